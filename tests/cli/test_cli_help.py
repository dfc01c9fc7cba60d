"""Every command documents itself with only its own flags; completion comes from the parser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_mcp.cli import EXIT_CODES, build_parser, main
from rlm_mcp.settings_loader import LIMIT_NAMES

COMMANDS = (
    "serve",
    "index",
    "ask",
    "find",
    "search",
    "symbols",
    "references",
    "callers",
    "outline",
    "read",
    "map",
    "review",
    "trace",
    "cache",
    "completion",
)
MODEL_COMMANDS = ("ask", "review", "serve")
INDEX_COMMANDS = ("index", "find", "search", "symbols", "references", "callers", "outline", "read")
MODEL_FLAGS = ["--model", "--base-url", "--sub-model", "--unsafe-no-sandbox"] + [
    "--" + name.replace("_", "-") for name in LIMIT_NAMES
]
README = Path(__file__).resolve().parents[2] / "README.md"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


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


@pytest.mark.parametrize("command", [*COMMANDS[:-2], "cache list", "cache prune"])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(command, capsys)
    assert f"usage: rlm-mcp {command}" in out
    assert "--config" in out


@pytest.mark.parametrize("command", (*INDEX_COMMANDS, "map", "cache list", "trace"))
def test_commands_without_a_model_offer_no_model_or_limit_flags(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _help(command, capsys)
    offered = [flag for flag in MODEL_FLAGS if re.search(rf"{flag}\b", out)]
    assert offered == []
    assert "--log-level" in out
    if command != "trace":
        assert "--cache-dir" in out


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_model_commands_offer_the_model_and_every_limit(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _help(command, capsys)
    for flag in MODEL_FLAGS:
        assert flag in out, flag


def test_limit_flags_are_parsed_on_ask_serve_and_review() -> None:
    parser = build_parser()
    for command in MODEL_COMMANDS:
        args = parser.parse_args(
            [command, *(["x", "q"] if command == "ask" else []), "--max-llm-calls", "3"]
        )
        assert args.max_llm_calls == "3"


def test_a_limit_flag_on_search_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["search", ".", "x", "--max-llm-calls", "3"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --max-llm-calls" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _codes(table: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\s{2}(\d+)\s", table, re.MULTILINE)]


def test_exit_codes_are_one_table_in_the_help_and_the_readme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = _codes(EXIT_CODES)
    assert codes == [0, 1, 2, 3, 4, 130]
    assert len(set(codes)) == len(codes)
    assert "exit codes" + EXIT_CODES.rstrip() in _help("", capsys).replace("\n\n", "\n")
    readme = README.read_text()
    table = readme.split("| exit code |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\d+) \|", table, re.MULTILINE)
    assert [int(r) for r in rows] == codes, "the README's exit code table lists other codes"


# -- completion -------------------------------------------------------------------------


def _bash_complete(script: str, line: str) -> list[str]:
    """What bash completes for ``line`` (the cursor at its end) with the generated script."""
    words = line.split(" ")
    driver = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_rlm_mcp\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def _completion(shell: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "completion", shell],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bash_completion_completes_commands_subcommands_flags_and_choices() -> None:
    script = _completion("bash")
    assert _bash_complete(script, "rlm-mcp se") == ["serve", "search"]
    assert _bash_complete(script, "rlm-mcp cache ") == ["list", "prune"]
    search_flags = _bash_complete(script, "rlm-mcp search --")
    assert {"--fixed-strings", "--context", "--offset", "--cache-dir"} <= set(search_flags)
    assert "--max-llm-calls" not in search_flags
    assert "--max-llm-calls" in _bash_complete(script, "rlm-mcp ask --")
    assert _bash_complete(script, "rlm-mcp serve --transport ") == ["stdio", "http"]
    assert _bash_complete(script, "rlm-mcp cache prune --older") == ["--older-than"]
    assert _bash_complete(script, "rlm-mcp completion ") == ["bash", "zsh"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_parses_and_registers_for_rlm_mcp(tmp_path: Path) -> None:
    script = tmp_path / "_rlm-mcp"
    script.write_text(_completion("zsh"))
    assert subprocess.run(["zsh", "-n", str(script)], timeout=30).returncode == 0
    proc = subprocess.run(
        [
            "zsh",
            "-f",
            "-c",
            f"autoload -U compinit && compinit -u -D && source {script} && "
            "print $_comps[rlm-mcp] && whence -w _rlm_mcp_cache_prune",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["_rlm_mcp", "_rlm_mcp_cache_prune: function"]
    assert "{-F,--fixed-strings}'[PATTERN is a literal string]" in script.read_text()
