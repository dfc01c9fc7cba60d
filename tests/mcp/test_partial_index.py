"""A cold rlm_load returns once texts are stored; symbols fill in behind it, and results say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.server import MCPServer

from tests.polling import eventually


def _big_repo(root: Path, files: int = 400) -> Path:
    for i in range(files):
        d = root / f"pkg{i % 9}"
        d.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def fn_{i}_{j}(x):\n    return x + {j}\n\n\n" for j in range(20))
        (d / f"m{i}.py").write_text(body)
    return root


async def test_cold_load_serves_at_once_then_reports_progress_until_symbols_are_complete(
    server: MCPServer[Any], workspace: Path
) -> None:
    root = _big_repo(workspace / "big")
    async with Client(server) as client:
        loaded = (await client.call_tool("rlm_load", {"path": str(root)})).structured_content
        assert loaded["files"] == 400
        # Grep covers every file as soon as rlm_load returns, partial or not.
        grep = (
            await client.call_tool("rlm_search", {"pattern": r"def fn_399_19\(", "repo": "big"})
        ).structured_content
        assert grep["hits"] == ["pkg3/m399.py:77:def fn_399_19(x):"]
        seen_partial = loaded["partial"] is not None

        async def indexed() -> dict[str, Any] | None:
            """The repository once fully indexed; meanwhile every answer says it is partial."""
            nonlocal seen_partial
            repo = (await client.call_tool("rlm_repos", {})).structured_content["repositories"][0]
            if repo["partial"] is None and repo["indexing"] is None:
                return dict(repo)
            seen_partial = True
            assert "files" in (repo["indexing"] or repo["partial"])
            syms = (
                await client.call_tool("rlm_symbols", {"query": "fn_1_1", "repo": "big"})
            ).structured_content
            if not syms["symbols"]:
                assert syms["partial"] is not None and "index partial" in syms["partial"]
            return None

        repo = await eventually(indexed, 60, "the symbols pass to finish", interval=0.05)
        assert repo["symbols"] == 400 * 20
        syms = (
            await client.call_tool("rlm_symbols", {"query": "fn_399_19", "repo": "big"})
        ).structured_content
        assert [s["path"] for s in syms["symbols"]] == ["pkg3/m399.py"]
        assert syms["partial"] is None
        # A 400-file cold load on two cores takes longer than the first reply: the
        # background pass was observable at least once.
        assert seen_partial
