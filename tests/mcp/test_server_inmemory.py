"""The MCP surface through the SDK's in-memory client: tools, results, errors, progress."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.llm_script import Script, code
from tests.mcp.results import error_text, structured
from tests.polling import eventually

EXPECTED_TOOLS = [
    "rlm_load",
    "rlm_query",
    "rlm_find",
    "rlm_search",
    "rlm_symbols",
    "rlm_references",
    "rlm_callers",
    "rlm_outline",
    "rlm_read",
    "rlm_repo_map",
    "rlm_exec",
    "rlm_repos",
    "rlm_unload",
]


async def test_tools_are_listed_in_a_stable_order_with_titles_annotations_and_schemas(
    server: MCPServer[Any],
) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == EXPECTED_TOOLS
        for tool in tools:
            assert tool.title and tool.description and len(tool.description) > 40
            assert tool.annotations is not None and tool.annotations.read_only_hint is not None
            assert tool.output_schema is not None
        hints = {t.name: t.annotations for t in tools if t.annotations is not None}
        assert hints["rlm_search"].read_only_hint is True
        assert hints["rlm_load"].read_only_hint is False
        assert hints["rlm_query"].open_world_hint is True


async def test_server_sends_workflow_instructions(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        init = client.initialize_result if hasattr(client, "initialize_result") else None
        instructions = getattr(init, "instructions", None) or getattr(
            client.session, "instructions", None
        )
        if instructions is None:
            pytest.skip("this SDK version does not expose the server instructions on the client")
        assert "rlm_load" in instructions and "rlm_query" in instructions


async def test_load_search_symbols_read_outline_references_and_map(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        loaded = structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        assert (
            loaded["name"] == "alpha"
            and loaded["files"] == 2
            and loaded["languages"]["python"] == 1
        )
        assert loaded["symbols"] >= 3 and loaded["reloaded"] is False

        hits = structured(await client.call_tool("rlm_search", {"pattern": r"def \w+"}))["hits"]
        assert "pkg/core.py:4:    def start(self):" in hits

        syms = structured(await client.call_tool("rlm_symbols", {"query": "Engine.start"}))[
            "symbols"
        ]
        assert syms and syms[0]["kind"] == "method" and syms[0]["line"] == 4

        text = structured(
            await client.call_tool("rlm_read", {"path": "pkg/core.py", "start": 8, "end": 9})
        )["text"]
        assert "def helper" in text and "8" in text

        outline = structured(await client.call_tool("rlm_outline", {"path": "pkg/core.py"}))[
            "symbols"
        ]
        assert [s["qualname"] for s in outline] == ["Engine", "Engine.start", "helper"]

        refs = structured(await client.call_tool("rlm_references", {"name": "helper"}))[
            "references"
        ]
        assert refs == ["pkg/core.py:5"]

        callers = structured(await client.call_tool("rlm_callers", {"name": "helper"}))["callers"]
        assert callers == [
            {"path": "pkg/core.py", "line": 5, "caller": "Engine.start", "caller_kind": "method"}
        ]

        repo_map = structured(await client.call_tool("rlm_repo_map", {"max_tokens": 200}))["text"]
        assert "pkg/core.py" in repo_map


async def test_reloading_the_same_path_reuses_the_cache(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        again = structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        assert again["reloaded"] is True and again["parsed"] == 0


async def test_several_repositories_are_loaded_at_once(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        structured(
            await client.call_tool("rlm_load", {"path": str(workspace / "beta"), "name": "b"})
        )
        repos = structured(await client.call_tool("rlm_repos", {}))
        assert sorted(r["name"] for r in repos["repositories"]) == ["alpha", "b"]
        assert repos["llm_configured"] is True
        beta_syms = structured(
            await client.call_tool("rlm_symbols", {"query": "Serve", "repo": "b"})
        )["symbols"]
        assert beta_syms[0]["path"] == "main.go"
        structured(await client.call_tool("rlm_unload", {"name": "b"}))
        repos = structured(await client.call_tool("rlm_repos", {}))
        assert [r["name"] for r in repos["repositories"]] == ["alpha"]


async def test_query_answers_with_status_usage_evidence_and_trajectory(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    async with Client(server) as client:
        llm.responder = Script(
            [
                code(
                    'd = repo.definition("helper")[0]\nbody = repo.read(d["path"], d["line"], d["end_line"])\nFINAL("helper returns 42")'
                )
            ]
        )
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        reports: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reports.append((progress, message))

        result = structured(
            await client.call_tool(
                "rlm_query", {"question": "What does helper return?"}, progress_callback=on_progress
            )
        )
        assert result["answer"] == "helper returns 42"
        assert result["status"] == "completed" and result["iterations"] == 1
        assert result["usage"]["calls"] == 1
        assert result["evidence"] == ["pkg/core.py:8-9"]
        assert result["trajectory"] and Path(result["trajectory"]).exists()
        assert any(m and "turn 1/" in m for _, m in reports)


async def test_load_reports_progress(server: MCPServer[Any], workspace: Path) -> None:
    async with Client(server) as client:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        await client.call_tool(
            "rlm_load", {"path": str(workspace / "alpha")}, progress_callback=on_progress
        )
        assert seen and seen[-1] == 2


async def test_per_query_limits_only_tighten_the_server_limits(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    async with Client(server) as client:
        llm.responder = Script(lambda body: code(f"print({len(body['messages'])})"))
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = structured(
            await client.call_tool(
                "rlm_query",
                {"question": "loop", "limits": {"max_iterations": 2, "max_llm_calls": 1000}},
            )
        )
        assert result["status"] == "limit_reached" and result["iterations"] == 2


async def test_without_an_llm_query_names_the_settings_and_other_tools_work(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as client_without_llm:
        c = client_without_llm
        structured(await c.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        message = error_text(await c.call_tool("rlm_query", {"question": "anything?"}))
        assert "RLM_MODEL" in message and "RLM_BASE_URL" in message
        assert structured(await c.call_tool("rlm_search", {"pattern": "helper"}))["hits"]
        out = structured(await c.call_tool("rlm_exec", {"code": "n = len(repo.files())\nn * 10"}))
        assert out["value"] == "20"
        handle = out["session"]
        again = structured(await c.call_tool("rlm_exec", {"code": "n + 1", "session": handle}))
        assert again["value"] == "3" and again["session"] == handle
        fresh = structured(await c.call_tool("rlm_exec", {"code": "'n' in globals()"}))
        assert fresh["value"] == "False" and fresh["session"] != handle
        denied = structured(await c.call_tool("rlm_exec", {"code": "llm_query('x')"}))
        assert denied["error"] and "without an LLM" in denied["error"]


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("rlm_search", {"pattern": "x", "repo": "nope"}, "no loaded repository is named 'nope'"),
        ("rlm_query", {"question": "   "}, "question is empty"),
        ("rlm_query", {"question": "q", "limits": {"max_llm_calls": -1}}, "max_llm_calls"),
        ("rlm_query", {"question": "q", "limits": {"max_iterations": "lots"}}, "max_iterations"),
        ("rlm_search", {"pattern": "(unclosed"}, "invalid regex"),
        ("rlm_read", {"path": "does/not/exist.py"}, "does/not/exist.py"),
    ],
)
async def test_bad_arguments_give_clear_errors_and_the_server_keeps_serving(
    server: MCPServer[Any], workspace: Path, tool: str, args: dict[str, Any], expected: str
) -> None:
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        assert expected in error_text(await client.call_tool(tool, args))
        assert structured(await client.call_tool("rlm_search", {"pattern": "helper"}))["hits"]


async def test_query_before_any_load_says_to_load_first(server: MCPServer[Any]) -> None:
    async with Client(server) as client:
        assert "call rlm_load" in error_text(await client.call_tool("rlm_query", {"question": "q"}))


async def test_paths_outside_the_allowed_roots_are_refused(
    server: MCPServer[Any], workspace: Path, tmp_path: Path
) -> None:
    async with Client(server) as client:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.py").write_text("TOKEN = 1\n")
        os.symlink(outside, workspace / "sneaky")
        for path in (
            str(outside),
            str(workspace / ".." / "outside"),
            str(workspace / "sneaky"),
            "/etc",
        ):
            assert "outside the allowed roots" in error_text(
                await client.call_tool("rlm_load", {"path": path})
            )
        assert "no such file" in error_text(
            await client.call_tool("rlm_load", {"path": str(workspace / "missing")})
        )
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))


async def test_several_queries_run_at_once_without_blocking(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    async with Client(server) as client:
        llm.responder = Script(lambda body: Reply(text=code('FINAL("done")'), delay=0.4))
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        answers: list[str] = []

        async def ask() -> None:
            answers.append(
                structured(await client.call_tool("rlm_query", {"question": "q"}))["answer"]
            )

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)
            await eventually(
                lambda: llm.in_flight >= 2 or len(answers) >= 3, 5, "two queries in flight at once"
            )
            assert structured(await client.call_tool("rlm_search", {"pattern": "helper"}))["hits"]
        assert answers == ["done"] * 3
        assert llm.max_concurrent >= 2


async def test_cancelled_query_stops_the_model_and_the_server_keeps_serving(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    async with Client(server) as client:
        llm.responder = Script([code("while True:\n    pass")])
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        with anyio.move_on_after(1.5) as scope:
            await client.call_tool("rlm_query", {"question": "spin"})
        assert scope.cancelled_caught
        llm.responder = Script([code('FINAL("alive")')])
        with anyio.fail_after(10):
            result = structured(await client.call_tool("rlm_query", {"question": "still there?"}))
        assert result["answer"] == "alive"
