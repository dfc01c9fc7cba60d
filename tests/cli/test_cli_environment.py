"""An unusable cache or trajectory directory is one line naming it, never a traceback."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_mcp.testing import LoopbackLLMServer
from tests.cli.cli_helpers import code, run_cli, run_cli_tty


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may create files in (root ignores modes: sysfs refuses even root)."""
    if os.geteuid() == 0:
        if not os.access("/sys/kernel", os.F_OK):
            pytest.skip("running as root without /sys/kernel to stand for a read-only directory")
        yield Path("/sys/kernel")
        return
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        yield path
    finally:
        path.chmod(stat.S_IRWXU)


def _cases(tmp_path: Path, read_only: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    return {
        "read-only": (read_only, "it is not writable"),
        "a file": (a_file, "it is a file, not a directory"),
        "under a file": (a_file / "cache", "one of its parents is a file, not a directory"),
    }


@pytest.mark.parametrize("case", ["read-only", "a file", "under a file"])
@pytest.mark.parametrize("command", ["index", "search", "ask"])
def test_an_unusable_cache_dir_is_one_line_naming_it_and_exit_3(
    case: str,
    command: str,
    tmp_path: Path,
    read_only_dir: Path,
    repo: Path,
    env: dict[str, str],
    llm: LoopbackLLMServer,
) -> None:
    cache_dir, why = _cases(tmp_path, read_only_dir)[case]
    args = {"index": [], "search": ["divide"], "ask": ["Where is divide?"]}[command]
    proc = run_cli(command, str(repo), *args, env=dict(env, RLM_CACHE_DIR=str(cache_dir)))
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"rlm-mcp: error: cannot use the cache directory {cache_dir}: ")
    assert why in proc.stderr and "RLM_CACHE_DIR" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert llm.requests == []


def test_serve_with_an_unusable_cache_dir_exits_3_before_serving(
    tmp_path: Path, env: dict[str, str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    proc = run_cli("serve", env=dict(env, RLM_CACHE_DIR=str(a_file)))
    assert proc.returncode == 3
    assert f"cannot use the cache directory {a_file}: it is a file" in proc.stderr
    assert proc.stdout == ""


def test_ask_with_an_unusable_trajectory_dir_warns_and_answers_without_one(
    tmp_path: Path, repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    a_file = tmp_path / "trajectories-file"
    a_file.write_text("x")
    llm.enqueue(code('FINAL("in calc/ops.py")'))
    proc = run_cli(
        "ask",
        str(repo),
        "Where is divide?",
        "--json",
        env=dict(env, RLM_TRAJECTORY_DIR=str(a_file)),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"rlm-mcp: warning: not writing trajectories: cannot use {a_file}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"trajectory": null' in proc.stdout
    assert a_file.read_text() == "x"


def test_errors_are_red_on_a_terminal_unless_no_color_is_set(
    repo: Path, env: dict[str, str]
) -> None:
    status, _, err = run_cli_tty("search", str(repo), "(", env=env)
    assert status == 2
    assert "rlm-mcp: \x1b[1;31merror:\x1b[0m invalid regex" in err
    status, _, err = run_cli_tty("search", str(repo), "(", env=dict(env, NO_COLOR="1"))
    assert status == 2 and "invalid regex" in err
    assert re.search("\x1b\\[[0-9;]*m", err) is None, "NO_COLOR: no colour codes"
    piped = run_cli("search", str(repo), "(", env=env)
    assert piped.stderr.startswith("rlm-mcp: error: invalid regex")
