"""Sessions over MCP: handles, follow-ups in one REPL, isolation, expiry and compaction."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.server import MCPServer

from rlm_mcp.config import SessionSettings
from rlm_mcp.server import create_server
from rlm_mcp.testing import LoopbackLLMServer
from tests.llm_script import Script, code, last_user
from tests.mcp.conftest import make_settings
from tests.mcp.results import error_text, structured
from tests.polling import eventually


def _server(
    tmp_path: Path, workspace: Path, llm: LoopbackLLMServer | None, **sessions: Any
) -> MCPServer[Any]:
    settings = make_settings(tmp_path, workspace, llm)
    return create_server(replace(settings, sessions=SessionSettings(**sessions)))


async def test_a_follow_up_keeps_the_repl_and_recalls_the_earlier_turn(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    script = Script(
        [
            code("found = repo.symbols('helper')[0]['path']\nFINAL(found)"),
            code("FINAL('again: ' + found)"),
        ]
    )
    llm.responder = script
    async with Client(server) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        first = structured(await c.call_tool("rlm_query", {"question": "Where is helper?"}))
        assert first["answer"] == "pkg/core.py"
        handle = first["session"]
        assert handle.startswith("rlms_") and len(handle) > 40
        assert first["session_ttl_seconds"] == 1800
        second = structured(
            await c.call_tool("rlm_query", {"question": "Say it again", "session": handle})
        )
        assert second["answer"] == "again: pkg/core.py"  # `found` survived in the REPL
        assert second["session"] == handle
        told = last_user(script.root_bodies[1])
        assert "continues a session" in told and "Q: Where is helper?" in told
        assert "A: pkg/core.py" in told
        # Without the handle a query starts fresh: `found` is not there.
        llm.responder = Script([code("FINAL(str('found' in globals()))")])
        fresh = structured(await c.call_tool("rlm_query", {"question": "fresh?"}))
        assert fresh["answer"] == "False" and fresh["session"] != handle


async def test_exec_and_query_share_a_session_and_exec_binds_no_llm(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = Script([code("FINAL(str(n * 2))")])
    async with Client(server) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        out = structured(await c.call_tool("rlm_exec", {"code": "n = 21"}))
        handle = out["session"]
        answer = structured(
            await c.call_tool("rlm_query", {"question": "double n", "session": handle})
        )
        assert answer["answer"] == "42"
        # Back in rlm_exec the query's llm_query is unbound again: no LLM from exec.
        denied = structured(
            await c.call_tool("rlm_exec", {"code": "llm_query('x')", "session": handle})
        )
        assert denied["error"] and "without an LLM" in denied["error"]


async def test_unknown_and_expired_handles_are_errors_that_say_how_to_start_anew(
    tmp_path: Path, workspace: Path
) -> None:
    server = _server(tmp_path, workspace, None, ttl_seconds=0.2)
    async with Client(server) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        unknown = error_text(
            await c.call_tool("rlm_exec", {"code": "1", "session": "rlms_never-issued"})
        )
        assert "no session" in unknown and "omit the session handle" in unknown
        handle = structured(await c.call_tool("rlm_exec", {"code": "x = 1"}))["session"]

        async def no_sessions() -> bool:
            repos = structured(await c.call_tool("rlm_repos", {}))
            return repos["sessions"] == 0

        # The TTL is 0.2 s: the sweeper ends the session with no call needed (rlm_repos
        # counts sessions without touching one).
        await eventually(no_sessions, 10.0, "the session never expired")
        message = error_text(await c.call_tool("rlm_exec", {"code": "x", "session": handle}))
        assert "has ended" in message and "unused for over 0.2 s" in message
        assert "Omit the session handle" in message


async def test_beyond_max_sessions_the_least_recently_used_is_evicted(
    tmp_path: Path, workspace: Path
) -> None:
    server = _server(tmp_path, workspace, None, max_sessions=2)
    async with Client(server) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        a = structured(await c.call_tool("rlm_exec", {"code": "v = 'a'"}))["session"]
        b = structured(await c.call_tool("rlm_exec", {"code": "v = 'b'"}))["session"]
        structured(await c.call_tool("rlm_exec", {"code": "v", "session": a}))  # a is recent
        structured(await c.call_tool("rlm_exec", {"code": "v = 'c'"}))  # evicts b
        assert (
            structured(await c.call_tool("rlm_exec", {"code": "v", "session": a}))["value"] == "'a'"
        )
        gone = error_text(await c.call_tool("rlm_exec", {"code": "v", "session": b}))
        assert "evicted: more than 2 sessions" in gone


async def test_unloading_a_repository_ends_its_sessions(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        handle = structured(await c.call_tool("rlm_exec", {"code": "x = 1"}))["session"]
        structured(await c.call_tool("rlm_unload", {"name": "alpha"}))
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        message = error_text(await c.call_tool("rlm_exec", {"code": "x", "session": handle}))
        assert "was unloaded" in message


async def test_a_session_stays_with_its_repository(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "beta")}))
        handle = structured(await c.call_tool("rlm_exec", {"code": "1", "repo": "alpha"}))[
            "session"
        ]
        message = error_text(
            await c.call_tool("rlm_exec", {"code": "1", "repo": "beta", "session": handle})
        )
        assert "belongs to the repository 'alpha'" in message


async def test_tool_descriptions_state_the_session_lifetime(
    tmp_path: Path, workspace: Path
) -> None:
    server = _server(tmp_path, workspace, None, ttl_seconds=90, max_sessions=5)
    async with Client(server) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("rlm_query", "rlm_exec"):
        text = tools[name].description or ""
        assert "Sessions expire after 90 s unused; at most 5 live" in text
        assert "session" in json.dumps(tools[name].input_schema)


async def test_a_long_session_is_compacted_by_the_sub_model_and_the_trajectory_says_so(
    tmp_path: Path, workspace: Path, llm: LoopbackLLMServer
) -> None:
    settings = make_settings(tmp_path, workspace, llm)
    assert settings.root_model is not None
    small = replace(settings.root_model, context_window=2_000)
    server = create_server(replace(settings, root_model=small))
    long_answer = "word " * 300  # ~400 tokens a turn: a 2,000-token window holds ~1 turn
    script = Script(
        lambda body: code(f"FINAL({long_answer!r} + str(len(SHOW_VARS.__name__)))"),
        sub=lambda prompt: "SUMMARY: the user asked about alpha three times",
    )
    llm.responder = script
    async with Client(server) as c:
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        handle = structured(await c.call_tool("rlm_query", {"question": "q1"}))["session"]
        for q in ("q2", "q3", "q4"):
            last = structured(await c.call_tool("rlm_query", {"question": q, "session": handle}))
    assert script.sub_prompts and "Summarise" in script.sub_prompts[0]
    told = last_user(script.root_bodies[-1])
    assert "SUMMARY: the user asked about alpha" in told
    assert "Q: q1" not in told  # folded into the note
    events = [json.loads(line) for line in Path(last["trajectory"]).read_text().splitlines()]
    compacted = [e for e in events if e["event"] == "compacted"]
    assert compacted and compacted[0]["turns"] >= 1
    assert last["sub_calls"] >= 1  # the summary is a budgeted sub-call, in the usage
