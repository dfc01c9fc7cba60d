"""The README's first command, as a new user runs it: a fresh virtual environment, no network.

The project is built into a wheel and installed into a new venv (its dependencies are taken
from this test environment through a ``.pth`` file, since the registries are not reachable
from tests); then ``rlm-mcp ask`` runs with no model configured, and again against the
loopback model.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from rlm_mcp.testing import LoopbackLLMServer
from tests.cli.cli_helpers import code, isolated_env, write_tree

ROOT = Path(__file__).resolve().parents[2]


def _fresh_venv(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps-from-tests.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("rlm_mcp-*.whl"))
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv / "bin" / "rlm-mcp"


def test_readme_first_command_works_in_a_fresh_venv_with_and_without_a_model(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    exe = _fresh_venv(tmp_path)
    repo = write_tree(
        tmp_path / "project",
        {
            "net/retry.py": (
                "def retry_policy():\n"
                '    """How many times a failed request is retried, and how long to wait."""\n'
                "    return {'attempts': 3, 'backoff': 0.5}\n"
            ),
            "app.py": "from net.retry import retry_policy\n\nprint(retry_policy())\n",
        },
    )
    env = isolated_env(tmp_path)
    question = "Where is the retry policy configured?"
    bare = subprocess.run(
        [str(exe), "ask", ".", question],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bare.returncode == 0, bare.stderr
    assert "ranked search alone (no LLM)" in bare.stdout
    assert "net/retry.py:1-3: function retry_policy" in bare.stdout
    assert "Traceback" not in bare.stderr

    llm.responder = lambda body: code('FINAL("net/retry.py:1 retry_policy: 3 attempts")')
    with_model = subprocess.run(
        [str(exe), "ask", ".", question],
        cwd=repo,
        env=dict(env, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_model.returncode == 0, with_model.stderr
    assert with_model.stdout.splitlines() == [
        "net/retry.py:1 retry_policy: 3 attempts",
        "rests on (verified in the index): net/retry.py:1",
    ]
