"""rlm_repos tells how fresh the index is: the watch mode, pending changes, the last update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.server import MCPServer

from tests.polling import eventually


async def test_repos_reports_watch_mode_and_applied_changes(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        await client.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        status = (await client.call_tool("rlm_repos", {})).structured_content
        repo = status["repositories"][0]
        assert repo["watching"] is True
        assert repo["watch_mode"] in ("inotify", "polling")
        assert repo["last_error"] is None
        version = repo["index_version"]
        (workspace / "alpha" / "pkg" / "extra.py").write_text("def added():\n    pass\n")

        async def applied() -> dict[str, Any] | None:
            repo = (await client.call_tool("rlm_repos", {})).structured_content["repositories"][0]
            done = repo["index_version"] > version and repo["pending_changes"] == 0
            return dict(repo) if done else None

        repo = await eventually(applied, 10, "the new file applied, nothing pending", interval=0.02)
        assert repo["index_version"] > version
        assert repo["pending_changes"] == 0
        assert repo["last_applied_at"] is not None
