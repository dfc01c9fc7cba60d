"""A file whose name is not UTF-8, through the real CLI and a real MCP client session.

The name is shown escaped (``caf\\xe9.py``, see ``rlm_mcp/index/discover/names.py``)
and that shown form is accepted back as input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcp import Client

from rlm_mcp.config import IndexSettings, SandboxSettings, Settings
from rlm_mcp.server import create_server
from tests.cli.cli_helpers import isolated_env, run_cli

LATIN1 = b"caf\xe9.py"
SHOWN = "caf\\xe9.py"
BODY = "def brew_coffee():\n    return 'espresso'\n"


def _repo(root: Path) -> Path:
    root.mkdir(parents=True)
    with open(os.path.join(os.fsencode(root), LATIN1), "w", encoding="utf-8") as fh:
        fh.write(BODY)
    with open(os.path.join(os.fsencode(root), b"new\nline.py"), "w", encoding="utf-8") as fh:
        fh.write("NEWLINE_NAME = 1\n")
    (root / "plain.py").write_text("from cafe import brew_coffee\n\nbrew_coffee()\n")
    return root


def test_index_search_find_symbols_and_read_handle_a_latin1_file_name(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    env = isolated_env(tmp_path)
    indexed = run_cli("index", str(root), env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert "3 files" in indexed.stdout

    search = run_cli("search", str(root), "espresso", env=env)
    assert search.returncode == 0, search.stderr
    assert search.stdout == f"{SHOWN}:2:    return 'espresso'\n"

    newline = run_cli("search", str(root), "NEWLINE_NAME", env=env)
    assert newline.stdout == "new\\x0aline.py:1:NEWLINE_NAME = 1\n", "one name, one line"

    find = run_cli("find", str(root), "brew coffee", env=env)
    assert find.returncode == 0, find.stderr
    assert find.stdout.startswith(f"{SHOWN}:1-2: function brew_coffee")

    symbols = run_cli("symbols", str(root), "brew_coffee", env=env)
    assert symbols.returncode == 0, symbols.stderr
    assert symbols.stdout.startswith(f"{SHOWN}:1-2: function brew_coffee")

    as_json = run_cli("symbols", str(root), "brew_coffee", "--json", env=env)
    assert json.loads(as_json.stdout)["symbols"][0]["path"] == SHOWN

    for name in (SHOWN, str(root / SHOWN)):  # the shown form, relative or absolute
        read = run_cli("read", str(root), name, env=env)
        assert read.returncode == 0, read.stderr
        assert "return 'espresso'" in read.stdout

    callers = run_cli("callers", str(root), "brew_coffee", env=env)
    assert callers.returncode == 0 and "plain.py:3: in top level" in callers.stdout


def _settings(tmp_path: Path, allowed: Path) -> Settings:
    return Settings(
        index=IndexSettings(cache_dir=tmp_path / "cache", debounce_seconds=0.02),
        sandbox=SandboxSettings(),
        root_model=None,
        allowed_roots=(allowed,),
        trajectory_dir=tmp_path / "trajectories",
    )


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_an_mcp_session_loads_a_latin1_name_and_reads_the_file_back(tmp_path: Path) -> None:
    root = _repo(tmp_path / "allowed" / "repo")
    server = create_server(_settings(tmp_path, tmp_path / "allowed"))
    async with Client(server) as client:
        loaded = _structured(await client.call_tool("rlm_load", {"path": str(root)}))
        assert loaded["files"] == 3
        syms = _structured(await client.call_tool("rlm_symbols", {"query": "brew_coffee"}))
        assert [s["path"] for s in syms["symbols"]] == [SHOWN]
        read = _structured(await client.call_tool("rlm_read", {"path": syms["symbols"][0]["path"]}))
        assert "return 'espresso'" in read["text"]
        hits = _structured(await client.call_tool("rlm_search", {"pattern": "espresso"}))
        assert hits["hits"] == [f"{SHOWN}:2:    return 'espresso'"]
        outline = _structured(await client.call_tool("rlm_outline", {"path": SHOWN}))
        assert [s["qualname"] for s in outline["symbols"]] == ["brew_coffee"]
        # The REPL's repo.read round-trips too: the names repo.files() gives read back.
        repl = _structured(
            await client.call_tool(
                "rlm_exec",
                {"code": "for p in sorted(repo.files()):\n    print(p, repo.text(p).count('\\n'))"},
            )
        )
        assert repl["error"] is None, repl
        assert repl["stdout"].splitlines() == [f"{SHOWN} 2", "new\\x0aline.py 1", "plain.py 3"]


ROOT_NAME = b"d\xe9p\xf4t"
ROOT_SHOWN = "d\\xe9p\\xf4t"


def _latin1_root(parent: Path) -> Path:
    root = Path(os.fsdecode(os.path.join(os.fsencode(parent), ROOT_NAME)))
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(BODY)
    return root


def test_a_repository_whose_own_path_is_not_utf8_indexes_and_searches(tmp_path: Path) -> None:
    root = _latin1_root(tmp_path)
    env = isolated_env(tmp_path)
    for args, expected in (
        (("index", str(root)), "1 files"),
        (("search", str(root), "espresso"), "pkg/a.py:2:    return 'espresso'"),
        (("symbols", str(root), "brew_coffee"), "pkg/a.py:1-2: function brew_coffee"),
    ):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert expected in proc.stdout and "Traceback" not in proc.stderr
    listed = run_cli("cache", "list", env=env)
    assert listed.returncode == 0 and ROOT_SHOWN in listed.stdout
    assert "(missing)" not in listed.stdout


async def test_an_mcp_session_loads_a_repository_whose_path_is_not_utf8(tmp_path: Path) -> None:
    root = _latin1_root(tmp_path / "allowed")
    server = create_server(_settings(tmp_path, tmp_path / "allowed"))
    async with Client(server) as client:
        loaded = _structured(await client.call_tool("rlm_load", {"path": str(root)}))
        assert loaded["root"].endswith(ROOT_SHOWN) and loaded["files"] == 1
        assert loaded["name"] == ROOT_SHOWN
        hits = _structured(await client.call_tool("rlm_search", {"pattern": "espresso"}))
        assert hits["hits"] == ["pkg/a.py:2:    return 'espresso'"]
        repos = _structured(await client.call_tool("rlm_repos", {}))
        assert repos["repositories"][0]["root"].endswith(ROOT_SHOWN)
