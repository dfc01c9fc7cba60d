"""A reader that closes stdout early (``| head``) is not a failure: the command exits 0, quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_helpers import isolated_env, write_tree

MANY = {f"pkg/m{i:03}.py": f"def f{i}():\n    return helper({i})\n" for i in range(400)}


def _closed_early(args: list[str], env: dict[str, str]) -> tuple[int, str, bytes]:
    """Run ``rlm-mcp args``, read one line of its stdout, close the pipe, wait."""
    with subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(timeout=60), err, first


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("pipes")
    root = write_tree(tmp / "many", MANY)
    env = isolated_env(tmp)
    subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "index", str(root)],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return root, env


@pytest.mark.parametrize(
    "command",
    [
        ["search", "{root}", "def", "--max-results", "400"],
        ["symbols", "{root}", "f", "--limit", "400"],
        ["symbols", "{root}", "f", "--limit", "400", "--json"],
        ["references", "{root}", "helper", "--limit", "400"],
        ["callers", "{root}", "helper", "--limit", "400"],
        ["find", "{root}", "def helper", "--limit", "200"],
        ["completion", "bash"],
    ],
)
@pytest.mark.parametrize("buffered", [True, False])
def test_a_closed_stdout_ends_the_command_quietly_with_status_0(
    indexed: tuple[Path, dict[str, str]], command: list[str], buffered: bool
) -> None:
    """Buffered, the write fails at the last flush; unbuffered, at the print itself."""
    root, env = indexed
    env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    args = [a.format(root=root) for a in command]
    status, err, first = _closed_early(args, env)
    assert first
    assert status == 0, err
    assert "Broken pipe" not in err and "BrokenPipeError" not in err and "Traceback" not in err
