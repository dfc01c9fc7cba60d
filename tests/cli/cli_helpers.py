"""Running ``rlm-mcp`` as a real subprocess with an isolated environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from rlm_mcp.testing import LoopbackLLMServer
from tests.polling import poll

SAMPLE = {
    "calc/ops.py": (
        "def divide(a, b):\n"
        '    """Divide a by b."""\n'
        "    return a / b\n"
        "\n"
        "\n"
        "def add(a, b):\n"
        "    return a + b\n"
    ),
    "calc/cli.py": "from calc.ops import add, divide\n\nprint(divide(add(1, 2), 3))\n",
    "README.md": "# calc\nA calculator.\n",
}


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The parent's environment minus every rlm-mcp / OpenAI setting, with XDG dirs in ``tmp``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RLM_", "OPENAI_")) and not k.startswith("XDG_")
    }
    env.update(
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
        XDG_STATE_HOME=str(tmp / "xdg-state"),
        RLM_CACHE_DIR=str(tmp / "cache"),
        RLM_TRAJECTORY_DIR=str(tmp / "trajectories"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # A crash in native code (a rare SIGSEGV of `map` seen in CI) then leaves every
    # thread's stack in stderr, which the failing assertion shows.
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", *args],
        env={"PYTHONFAULTHANDLER": "1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def code(src: str) -> str:
    return f"Let me run this.\n```python\n{src.strip()}\n```\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "calc-repo", SAMPLE)


@pytest.fixture
def env(tmp_path: Path, llm: LoopbackLLMServer) -> dict[str, str]:
    return isolated_env(tmp_path, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model")


def run_cli_tty(*args: str, env: Mapping[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run ``rlm-mcp`` with stderr on a pseudo-terminal; returns (exit code, stdout, stderr)."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    started = time.monotonic()

    def drained() -> bool:
        """Read what the terminal holds; true at its end, or once the process is gone."""
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            return proc.poll() is not None
        try:
            data = os.read(master, 65536)
        except OSError:
            return True
        chunks.append(data)
        return not data

    try:
        poll(drained, timeout, interval=0)
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")
