"""The model-free MCP tools as CLI commands; ``--json`` is the tools' structured output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from rlm_mcp.config import IndexSettings, Settings
from rlm_mcp.server import create_server
from tests.cli.cli_helpers import run_cli

# command line (after PATH) -> the MCP tool and its arguments for the same question
SAME_QUESTION: list[tuple[list[str], str, dict[str, Any]]] = [
    (["symbols", "divide"], "rlm_symbols", {"query": "divide"}),
    (["symbols", "d", "--match", "prefix", "--limit", "5"], "rlm_symbols",
     {"query": "d", "match": "prefix", "limit": 5}),
    (["references", "add"], "rlm_references", {"name": "add"}),
    (["callers", "divide"], "rlm_callers", {"name": "divide"}),
    (["outline", "calc/ops.py"], "rlm_outline", {"path": "calc/ops.py"}),
    (["read", "calc/ops.py", "--start", "2", "--end", "3"], "rlm_read",
     {"path": "calc/ops.py", "start": 2, "end": 3}),
    (["map", "--tokens", "256"], "rlm_repo_map", {"max_tokens": 256}),
    (["find", "divide two numbers", "--limit", "3"], "rlm_find",
     {"query": "divide two numbers", "limit": 3}),
]  # fmt: skip


async def _mcp_answers(repo: Path, tmp_path: Path) -> list[dict[str, Any]]:
    settings = Settings(
        index=IndexSettings(cache_dir=tmp_path / "mcp-cache", watch=False),
        allowed_roots=(tmp_path,),
        trajectory_dir=None,
    )
    answers = []
    async with Client(create_server(settings)) as client:
        loaded = await client.call_tool("rlm_load", {"path": str(repo)})
        assert not loaded.is_error, loaded.content
        for _, tool, arguments in SAME_QUESTION:
            got = await client.call_tool(tool, arguments)
            assert not got.is_error, got.content
            answers.append(got.structured_content)
        grep = await client.call_tool("rlm_search", {"pattern": r"return \w", "max_results": 1})
        answers.append(grep.structured_content)
    return answers


async def test_cli_json_is_the_mcp_structured_output_for_the_same_repository(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    expected = await _mcp_answers(repo, tmp_path)
    for (argv, tool, _), mcp_out in zip(SAME_QUESTION, expected, strict=False):
        proc = run_cli(argv[0], str(repo), *argv[1:], "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == mcp_out, f"{argv[0]} --json differs from {tool}"

    proc = run_cli("search", str(repo), r"return \w", "--max-results", "1", "--json", env=env)
    page, grep = json.loads(proc.stdout), expected[-1]
    assert [f"{h['path']}:{h['line']}:{h['text']}" for h in page["hits"]] == grep["hits"]
    assert page["truncated"] == grep["truncated"]
    assert page["index_version"] == grep["index_version"]


def test_symbols_prints_location_kind_name_and_signature(repo: Path, env: dict[str, str]) -> None:
    proc = run_cli("symbols", str(repo), "divide", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "calc/ops.py:1-3: function divide: def divide(a, b):\n"
    none = run_cli("symbols", str(repo), "no_such_symbol", "--match", "exact", env=env)
    assert none.returncode == 1 and none.stdout == ""
    bad = run_cli("symbols", str(repo), "(", "--match", "regex", env=env)
    assert bad.returncode == 2 and "invalid regex" in bad.stderr


def test_references_and_callers_show_the_line_and_the_enclosing_definition(
    repo: Path, env: dict[str, str]
) -> None:
    refs = run_cli("references", str(repo), "add", env=env)
    assert refs.returncode == 0, refs.stderr
    assert refs.stdout == "calc/cli.py:3: print(divide(add(1, 2), 3))\n"
    callers = run_cli("callers", str(repo), "divide", env=env)
    assert callers.stdout == "calc/cli.py:3: in top level\n"
    assert run_cli("callers", str(repo), "nobody_calls_this", env=env).returncode == 1


def test_outline_and_read_accept_a_path_on_disk_under_the_repository(
    repo: Path, env: dict[str, str]
) -> None:
    outline = run_cli("outline", str(repo), str(repo / "calc" / "ops.py"), env=env)
    assert outline.returncode == 0, outline.stderr
    assert [ln.split() for ln in outline.stdout.splitlines()] == [
        ["1-3", "function", "divide"],
        ["6-7", "function", "add"],
    ]
    read = run_cli("read", str(repo), "calc/ops.py", "--start", "6", env=env, cwd=repo)
    assert read.stdout == "   6| def add(a, b):\n   7|     return a + b\n"
    missing = run_cli("read", str(repo), "calc/nope.py", env=env)
    assert missing.returncode == 2 and "unknown path" in missing.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["read", "calc/ops.py", "--start", "5", "--end", "2"], "--end (2) is before --start"),
        (["map", "--tokens", "10"], "--tokens must be between 64 and 32000"),
        (["symbols", "x", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, repo: Path, env: dict[str, str]
) -> None:
    proc = run_cli(argv[0], str(repo), *argv[1:], env=env)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_map_prints_the_ranked_files_and_symbols(repo: Path, env: dict[str, str]) -> None:
    proc = run_cli("map", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:3] == [
        "calc/ops.py:",
        "  function divide (1)",
        "  function add (6)",
    ]
