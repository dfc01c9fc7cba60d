"""Every command documents itself; the package runs as a module and as a console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_mcp.cli import build_parser, main

COMMANDS = ("serve", "index", "ask", "search", "review", "trace")


def test_console_script_help_lists_every_command() -> None:
    script = shutil.which("rlm-mcp", path=str(Path(sys.executable).parent))
    assert script is not None, "the rlm-mcp console script is not installed in the venv"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for command in COMMANDS:
        assert command in proc.stdout
    assert proc.stderr == ""


def test_python_dash_m_prints_the_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "--version"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("rlm-mcp ")


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: rlm-mcp {command}" in out
    assert "--config" in out


def test_limit_flags_are_offered_on_ask_and_serve() -> None:
    parser = build_parser()
    for command in ("ask", "serve", "review"):
        args = parser.parse_args(
            [command, *(["x", "q"] if command == "ask" else []), "--max-llm-calls", "3"]
        )
        assert args.max_llm_calls == "3"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
