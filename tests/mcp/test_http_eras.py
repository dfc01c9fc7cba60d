"""What a client sees over Streamable HTTP, in both protocol eras (the 2026 handshake and a
2025-era client): the response budget with working cursors, text that stands on its own,
progress on ``rlm_query``, a session handle, and a provider failure's ``error_kind``.
A real ``rlm-mcp serve --transport http`` subprocess with a scripted loopback model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rlm_mcp.backends.base import estimate_tokens
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.mcp.results import structured
from tests.mcp.serve_helpers import server_env, serving_http
from tests.polling import apoll

TOKEN = "eras-over-http"
BUDGET = 1_500
FILES = 400
Mode = Literal["auto", "legacy"]
MODES: list[Mode] = ["auto", "legacy"]


@dataclass
class Served:
    port: int
    repo: Path
    llm: LoopbackLLMServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("http-eras")
    repo = tmp / "wide"
    for i in range(FILES):
        path = repo / f"d{i // 50}" / f"m{i:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def fn_{i:03d}():\n    return 'NEEDLE {i}'\n")
    with LoopbackLLMServer() as llm:
        env = server_env(
            tmp,
            RLM_BASE_URL=llm.base_url,
            RLM_MODEL="root-model",
            RLM_API_KEY="unused",
            RLM_MAX_RESULT_TOKENS=str(BUDGET),
        )
        with serving_http(tmp, env, TOKEN) as port:
            yield Served(port, repo, llm)


@asynccontextmanager
async def connect(served: Served, mode: Mode) -> AsyncIterator[Client]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(served.url, http_client=http), mode=mode) as client,
    ):
        structured(await client.call_tool("rlm_load", {"path": str(served.repo)}))

        async def complete() -> bool:  # a cold load leaves symbols to a background pass
            listed = structured(await client.call_tool("rlm_repos", {}))["repositories"]
            return bool(listed) and not (listed[0].get("partial") or listed[0].get("indexing"))

        assert await apoll(complete, timeout=60), "the load never completed"
        yield client


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if getattr(c, "type", "") == "text"]


def sent_tokens(result: Any) -> int:
    sent = sum(estimate_tokens(t) for t in texts(result))
    if result.structured_content is not None:
        sent += estimate_tokens(json.dumps(result.structured_content, separators=(",", ":")))
    return sent


@pytest.mark.parametrize("mode", MODES)
async def test_a_broad_search_pages_under_the_budget_with_cursors(
    served: Served, mode: Mode
) -> None:
    async with connect(served, mode) as client:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            args = {"pattern": "NEEDLE", "max_results": 10_000, "cursor": cursor}
            result = await client.call_tool("rlm_search", args)
            page = structured(result)
            assert sent_tokens(result) <= BUDGET
            seen += page["hits"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert f"cursor={cursor!r}" in texts(result)[0]  # the text says how to go on
        assert len(seen) == len(set(seen)) == FILES
        symbols = await client.call_tool("rlm_symbols", {"query": "fn_007"})
        assert "fn_007" in texts(symbols)[0] and not texts(symbols)[0].lstrip().startswith("{")


@pytest.mark.parametrize("mode", MODES)
async def test_a_query_sends_progress_and_returns_a_session_handle(
    served: Served, mode: Mode
) -> None:
    served.llm.responder = lambda body: Reply('```python\nFINAL("d0/m007.py:1")\n```')
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with connect(served, mode) as client:
        result = await client.call_tool(
            "rlm_query", {"question": "Where is fn_007?"}, progress_callback=on_progress
        )
        out = structured(result)
        assert out["answer"].startswith("d0/m007.py:1")
        assert seen, "no progress reached the client"
        assert isinstance(out["session"], str) and len(out["session"]) >= 32
        again = await client.call_tool(
            "rlm_exec", {"code": "print(1 + 1)", "session": out["session"]}
        )
        assert structured(again)["stdout"].strip() == "2"


@pytest.mark.parametrize("mode", MODES)
async def test_a_provider_failure_names_its_error_kind(served: Served, mode: Mode) -> None:
    served.llm.responder = lambda body: Reply("the key is revoked", status=401)
    async with connect(served, mode) as client:
        result = await client.call_tool("rlm_query", {"question": "Where is fn_001?"})
        assert result.is_error
        meta = (result.meta or {}).get("rlm-mcp/error") or {}
        assert meta.get("error_kind") == "auth", result
        assert "auth" in texts(result)[0]
