"""rlm_search and repo.grep search the way agents do: fixed strings, totals, paging, context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.server import MCPServer


async def test_fixed_strings_totals_offset_and_context(
    server: MCPServer[Any], workspace: Path
) -> None:
    root = workspace / "alpha"
    (root / "calls.py").write_text("".join(f"x{i} = call(a.b({i}))\n" for i in range(30)))
    async with Client(server) as client:
        await client.call_tool("rlm_load", {"path": str(root)})
        bad = await client.call_tool("rlm_search", {"pattern": "a.b("})
        assert bad.is_error and "fixed=True" in str(bad.content)
        page = (
            await client.call_tool(
                "rlm_search",
                {"pattern": "a.b(", "fixed_strings": True, "max_results": 5, "offset": 10},
            )
        ).structured_content
        assert page["total"] == 30 and page["offset"] == 10 and page["truncated"] is True
        assert page["hits"][0] == "calls.py:11:x10 = call(a.b(10))"
        assert len(page["hits"]) == 5
        ctx = (
            await client.call_tool("rlm_search", {"pattern": r"x15 =", "context": 1})
        ).structured_content
        assert ctx["hits"] == [
            "calls.py-15-x14 = call(a.b(14))\n"
            "calls.py:16:x15 = call(a.b(15))\n"
            "calls.py-17-x16 = call(a.b(16))"
        ]
        repl = (
            await client.call_tool(
                "rlm_exec",
                {"code": "print(len(repo.grep('a.b(', fixed=True, offset=28)))"},
            )
        ).structured_content
        assert repl["stdout"].strip() == "2"
