"""No caller can stall the server: a catastrophic regex runs in a helper that is killed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client

from rlm_mcp.config import IndexSettings, Settings
from rlm_mcp.server import create_server

EVIL = "(a+)+b"


def _server(tmp_path: Path) -> Any:
    root = tmp_path / "allowed" / "repo"
    root.mkdir(parents=True)
    (root / "trap.txt").write_text("a" * 29 + "\n")
    (root / "code.py").write_text("".join(f"def f{i}():\n    return {i}\n" for i in range(6000)))
    settings = Settings(
        index=IndexSettings(cache_dir=tmp_path / "cache", watch=False, grep_timeout_seconds=2),
        allowed_roots=(tmp_path / "allowed",),
        trajectory_dir=None,
    )
    return create_server(settings), root


async def test_a_catastrophic_regex_is_stopped_while_other_calls_stay_fast(tmp_path: Path) -> None:
    server, root = _server(tmp_path)
    async with Client(server) as a, Client(server) as b:
        await a.call_tool("rlm_load", {"path": str(root)})
        await b.call_tool("rlm_load", {"path": str(root)})
        other: list[float] = []
        results: dict[str, Any] = {}

        async def evil() -> None:
            results["evil"] = await a.call_tool("rlm_search", {"pattern": EVIL})

        async def meanwhile() -> None:
            await anyio.sleep(0.3)
            for _ in range(3):
                t0 = time.perf_counter()
                got = await b.call_tool("rlm_symbols", {"query": "f1234"})
                other.append(time.perf_counter() - t0)
                assert not got.is_error

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(evil)
            tg.start_soon(meanwhile)
        assert time.perf_counter() - t0 < 10
        assert max(other) < 1.0, other
        evil_result = results["evil"]
        assert evil_result.is_error
        assert "ran longer than 2s" in str(evil_result.content)
        again = await a.call_tool("rlm_search", {"pattern": r"def f12\b"})
        assert not again.is_error
        assert again.structured_content["hits"] == ["code.py:25:def f12():"]


async def test_model_code_cannot_stall_or_bloat_the_server_with_grep(tmp_path: Path) -> None:
    server, root = _server(tmp_path)
    async with Client(server) as client:
        await client.call_tool("rlm_load", {"path": str(root)})
        stalled = await client.call_tool(
            "rlm_exec",
            {"code": f"try:\n    repo.grep({EVIL!r})\nexcept Exception as e:\n    print(e)"},
        )
        assert "ran longer than" in stalled.structured_content["stdout"]
        huge = await client.call_tool(
            "rlm_exec", {"code": "hits = repo.grep('.', max_results=10**7)\nprint(len(hits))"}
        )
        out = huge.structured_content
        assert out["error"] is None, out
        assert out["stdout"].strip() == "10000"  # of 12,001 matching lines: capped while built
