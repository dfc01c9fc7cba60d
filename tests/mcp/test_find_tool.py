"""rlm_find (ranked search) and rlm_query's candidates and citations through the in-memory client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client
from mcp.server import MCPServer

from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.llm_script import Script, code
from tests.mcp.results import error_text, structured

HIT_KEYS = {"path", "line", "end_line", "qualname", "kind", "snippet", "score", "signals"}

RETRY = '''"""Calling remote services."""


def backoff_delay(attempt, base=0.5):
    """How long to wait before trying a failed request again."""
    return base * 2**attempt


def send_with_retries(request, attempts=3):
    """Send a request, trying again after transient failures."""
    return request
'''

STORE = '''"""Persistence."""


class RecordStore:
    """Keeps records on disk."""

    def save(self, record):
        """Write one record."""
        return record
'''


def _gamma(workspace: Path) -> Path:
    root = workspace / "gamma"
    for rel, text in {
        "net/retry.py": RETRY,
        "db/store.py": STORE,
        "README.md": "# gamma\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


async def test_find_is_listed_read_only_with_an_output_schema_of_hits(
    server: MCPServer[Any],
) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        find = tools["rlm_find"]
        assert find.annotations is not None and find.annotations.read_only_hint is True
        assert find.annotations.open_world_hint is False
        assert set(find.input_schema["properties"]) >= {"query", "repo", "limit", "glob"}
        assert find.input_schema["required"] == ["query"]
        assert find.output_schema is not None and "hits" in find.output_schema["properties"]


async def test_find_returns_ranked_hits_with_path_line_name_kind_snippet_and_score(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        found = structured(await client.call_tool("rlm_find", {"query": "what does helper return"}))
        hits = found["hits"]
        assert hits and all(set(h) == HIT_KEYS for h in hits)
        best = hits[0]
        assert {k: best[k] for k in ("path", "line", "end_line", "qualname", "kind")} == {
            "path": "pkg/core.py",
            "line": 8,
            "end_line": 9,
            "qualname": "helper",
            "kind": "function",
        }
        assert best["snippet"] == "def helper():"
        assert best["score"] > 0
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        assert isinstance(found["index_version"], int)
        assert llm.requests == []


async def test_find_ranks_a_paraphrase_and_honours_limit_and_glob(
    server: MCPServer[Any], workspace: Path
) -> None:
    root = _gamma(workspace)
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        hits = structured(
            await client.call_tool(
                "rlm_find", {"query": "how long do we wait before trying a request again"}
            )
        )["hits"]
        assert (hits[0]["path"], hits[0]["qualname"]) == ("net/retry.py", "backoff_delay")

        one = structured(
            await client.call_tool("rlm_find", {"query": "request record", "limit": 1})
        )["hits"]
        assert len(one) == 1

        in_db = structured(
            await client.call_tool("rlm_find", {"query": "request record", "glob": "db/**"})
        )["hits"]
        assert in_db and {h["path"] for h in in_db} == {"db/store.py"}


async def test_find_lists_the_callers_for_an_impact_question_and_can_leave_tests_out(
    server: MCPServer[Any], workspace: Path
) -> None:
    root = workspace / "alpha"
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text(
        "from pkg.core import helper\n\n\ndef test_helper():\n    assert helper() == 42\n"
    )
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        question = "What breaks if `helper` changes its return type?"
        found = structured(await client.call_tool("rlm_find", {"query": question}))
        assert [h["qualname"] for h in found["hits"]] == ["Engine.start", "test_helper"]
        assert all("callers" in h["signals"] for h in found["hits"])
        result = await client.call_tool("rlm_find", {"query": question, "exclude_tests": True})
        assert [h["qualname"] for h in structured(result)["hits"]] == ["Engine.start"]
        text = result.content[0].text  # type: ignore[union-attr]
        assert "Engine.start" in text and "callers" in text and "test_helper" not in text


async def test_find_searches_the_repository_named_by_repo(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        structured(
            await client.call_tool("rlm_load", {"path": str(workspace / "beta"), "name": "b"})
        )
        hits = structured(await client.call_tool("rlm_find", {"query": "Serve", "repo": "b"}))[
            "hits"
        ]
        assert hits and hits[0]["path"] == "main.go" and hits[0]["qualname"] == "Serve"
        assert "no loaded repository is named 'nope'" in error_text(
            await client.call_tool("rlm_find", {"query": "Serve", "repo": "nope"})
        )


async def test_find_works_without_an_llm_configured(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        hits = structured(await client.call_tool("rlm_find", {"query": "Engine.start"}))["hits"]
        assert hits[0]["qualname"] == "Engine.start" and hits[0]["kind"] == "method"


async def test_find_refuses_bad_input_with_clear_errors_and_keeps_serving(
    server: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server) as client:
        assert "call rlm_load" in error_text(await client.call_tool("rlm_find", {"query": "x"}))
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        assert "empty" in error_text(await client.call_tool("rlm_find", {"query": "   "}))
        assert "limit" in error_text(
            await client.call_tool("rlm_find", {"query": "helper", "limit": 0})
        )
        assert structured(await client.call_tool("rlm_find", {"query": "helper"}))["hits"]


async def test_query_result_carries_the_scouted_candidates_and_checked_citations(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    script = Script(
        [code("c = candidates[0]\nFINAL(f\"`helper()` in {c['path']}:{c['line']} returns 42\")")]
    )
    llm.responder = script
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = structured(
            await client.call_tool("rlm_query", {"question": "What does helper return?"})
        )
    assert result["status"] == "completed"
    assert result["answer"] == "`helper()` in pkg/core.py:8 returns 42"
    candidates = result["candidates"]
    assert candidates and all(set(c) == HIT_KEYS for c in candidates)
    assert (candidates[0]["path"], candidates[0]["qualname"]) == ("pkg/core.py", "helper")
    assert result["citations"] == [
        {"text": "pkg/core.py:8", "verified": True, "nearest": []},
        {"text": "helper", "verified": True, "nearest": []},
    ]
    assert "helper" in script.root_bodies[0]["messages"][1]["content"]


async def test_query_citing_an_invented_path_is_challenged_then_reports_the_citation(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = Script(
        [code('FINAL("see pkg/cores.py:8")'), code('FINAL("see pkg/cores.py:8 anyway")')]
    )
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = structured(
            await client.call_tool("rlm_query", {"question": "What does helper return?"})
        )
    assert result["status"] == "completed" and result["iterations"] == 2
    assert result["citations"] == [
        {"text": "pkg/cores.py:8", "verified": False, "nearest": ["pkg/core.py"]}
    ]


async def test_query_with_a_provider_that_always_fails_is_a_tool_error_naming_the_failure(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: Reply.error(500, "the provider is down")
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = await client.call_tool("rlm_query", {"question": "What does helper return?"})
        text = error_text(result)
        assert "the query failed" in text
        assert "500" in text or "the provider is down" in text
        assert "Ranked search (no LLM)" in text and "pkg/core.py:8-9" in text
        assert structured(await client.call_tool("rlm_find", {"query": "helper"}))["hits"]
