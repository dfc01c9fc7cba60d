"""A load that takes longer than load_wait_seconds returns its status at once and goes on in
the background; search answers from the files on disk meanwhile; nothing waits on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server import MCPServer

from rlm_mcp.server import create_server
from tests.mcp.conftest import make_settings
from tests.mcp.results import error_text, structured
from tests.mcp.serve_helpers import many_handlers
from tests.polling import apoll

FILES = 1500


def _big_tree(root: Path) -> Path:
    return many_handlers(root, FILES, 30)


def _server(tmp_path: Path, workspace: Path, wait: float) -> MCPServer[Any]:
    settings = dataclasses.replace(make_settings(tmp_path, workspace, None), load_wait_seconds=wait)
    return create_server(settings)


async def test_a_slow_load_returns_its_status_at_once_and_search_answers_while_it_runs(
    tmp_path: Path, workspace: Path
) -> None:
    root = _big_tree(workspace / "big")
    server = _server(tmp_path, workspace, wait=0.0)
    async with Client(server) as client:
        with anyio.fail_after(5):
            first = await client.call_tool("rlm_load", {"path": str(root)})
        loading = structured(first)
        assert loading["status"] == "loading" and loading["name"] == "big"
        assert "still loading" in loading["indexing"]
        assert "goes on in the background" in first.content[0].text  # type: ignore[union-attr]

        # while it loads: search scans the disk, other tools say it is loading, the
        # repository is listed as loading, and a second load reports on the same load
        found = await client.call_tool("rlm_search", {"pattern": r"def handler_7\b"})
        hits = structured(found)
        if hits.get("partial"):
            assert hits["hits"] == ["pkg7/mod7.py:4:def handler_7(event):"]
            assert "direct scan" in hits["partial"]
        symbols = await client.call_tool("rlm_symbols", {"query": "handler_7"})
        if symbols.is_error:
            assert "still loading" in error_text(symbols)
            assert "(error_kind: loading)" in error_text(symbols)
            assert (symbols.meta or {})["rlm-mcp/error"]["error_kind"] == "loading"
        listed = structured(await client.call_tool("rlm_repos", {}))["repositories"]
        assert [r["name"] for r in listed] == ["big"]
        assert listed[0].get("status", "ready") in ("loading", "ready")
        again = structured(await client.call_tool("rlm_load", {"path": str(root)}))
        assert again["name"] == "big"

        async def ready() -> bool:
            repos = structured(await client.call_tool("rlm_repos", {}))["repositories"]
            return bool(repos) and repos[0].get("status", "ready") == "ready"

        await apoll(ready, timeout=60)
        after = structured(await client.call_tool("rlm_search", {"pattern": r"def handler_7\b"}))
        assert after["hits"] == ["pkg7/mod7.py:4:def handler_7(event):"]
        assert not after.get("partial")

        async def reloaded() -> dict[str, Any] | None:
            # a reload goes through the background too; with no wait it may report loading
            r = structured(await client.call_tool("rlm_load", {"path": str(root)}))
            return r if r["status"] == "ready" else None

        done = await apoll(reloaded, timeout=30)
        assert done is not None and done["reloaded"] and done["files"] == FILES


async def test_a_load_that_ends_within_the_wait_returns_its_report(
    tmp_path: Path, workspace: Path
) -> None:
    server = _server(tmp_path, workspace, wait=30.0)
    async with Client(server) as client:
        loaded = structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        assert loaded["status"] == "ready" and loaded["files"] == 2


async def test_a_background_load_that_fails_is_listed_and_retried(
    tmp_path: Path, workspace: Path
) -> None:
    server = _server(tmp_path, workspace, wait=0.0)
    gone = workspace / "gone"
    gone.mkdir()
    async with Client(server) as client:
        gone.rmdir()
        result = await client.call_tool("rlm_load", {"path": str(gone)})
        assert result.is_error and "no such file or directory" in error_text(result)
        gone.mkdir()
        (gone / "a.py").write_text("def a():\n    return 1\n")

        async def loaded() -> bool:
            r = structured(await client.call_tool("rlm_load", {"path": str(gone)}))
            return bool(r["status"] == "ready")

        await apoll(loaded, timeout=30)
