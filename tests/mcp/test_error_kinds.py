"""Failures a client can see: a machine-readable kind in every tool error, and heartbeats."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.server import MCPServer

from rlm_mcp.server import ERROR_META, create_server
from rlm_mcp.service import RlmService
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.llm_script import code
from tests.mcp.conftest import make_settings


def failure(result: Any) -> tuple[str, dict[str, Any]]:
    assert result.is_error, result.structured_content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.meta is not None and ERROR_META in result.meta, result
    return text, result.meta[ERROR_META]


async def test_every_tool_error_names_its_kind_in_the_text_and_the_result(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as c:
        text, meta = failure(await c.call_tool("rlm_read", {"path": "x", "repo": "nope"}))
        assert (
            meta["error_kind"] == "unknown_repository"
            and "(error_kind: unknown_repository)" in text
        )
        text, meta = failure(await c.call_tool("rlm_load", {"path": str(workspace / "missing")}))
        assert meta["error_kind"] == "not_found" and meta["error"] in text
        await c.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        _, meta = failure(await c.call_tool("rlm_search", {"pattern": "("}))
        assert meta["error_kind"] == "bad_pattern"
        _, meta = failure(await c.call_tool("rlm_exec", {"code": "1", "session": "rlms_x"}))
        assert meta["error_kind"] == "unknown_session"


async def test_a_provider_failure_reaches_the_client_with_its_kind_and_session(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: Reply.error(401, "bad key")
    async with Client(server) as c:
        await c.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        text, meta = failure(await c.call_tool("rlm_query", {"question": "anything?"}))
    assert meta["error_kind"] == "auth"
    assert "(error_kind: auth)" in text and "the query failed" in text
    assert meta["session"].startswith("rlms_")


async def test_a_query_waiting_on_a_hung_model_sends_heartbeats(
    tmp_path: Path, workspace: Path, llm: LoopbackLLMServer
) -> None:
    settings = make_settings(tmp_path, workspace, llm)
    assert settings.root_model is not None
    settings = replace(settings, root_model=replace(settings.root_model, timeout_seconds=30))
    replies = [Reply(code('FINAL("done")'), delay=1.2)]
    llm.responder = lambda body: replies[0]

    def service() -> RlmService:
        svc = RlmService(settings)
        engine = svc.engine()
        engine.options = replace(engine.options, heartbeat_seconds=0.2)
        return svc

    server = create_server(settings, service_factory=service)
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(server) as c:
        await c.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        result = await c.call_tool(
            "rlm_query", {"question": "slow?"}, progress_callback=on_progress
        )
    assert not result.is_error, result.content
    beats = [m for m in messages if "waiting on root-model" in m]
    assert len(beats) >= 3, messages  # 1.2 s of waiting at 0.2 s a beat
    assert beats[0].startswith("working for ")
