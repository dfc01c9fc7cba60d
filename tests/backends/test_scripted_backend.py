"""ScriptedBackend, the in-process test double."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlm_mcp.backends import Completion, LLMBackend, TokenUsage
from rlm_mcp.backends.base import CompletionRequest
from rlm_mcp.errors import BackendError, BackendResponseError, BackendTimeout
from rlm_mcp.testing import ScriptedBackend
from tests.backends.backend_helpers import ask


async def test_replies_come_back_in_order_and_every_request_is_recorded() -> None:
    backend = ScriptedBackend(["one", "two"])
    first, second = ask("a"), ask("b", model="sub")

    results = [await backend.complete(first), await backend.complete(second)]

    assert [r.text for r in results] == ["one", "two"]
    assert [r.model for r in results] == ["scripted", "sub"]
    assert backend.history == [first, second]
    assert backend.remaining == 0
    assert isinstance(backend, LLMBackend)


async def test_an_exhausted_script_raises_a_backend_error_and_still_records_the_request() -> None:
    backend = ScriptedBackend(["only"])
    await backend.complete(ask())

    with pytest.raises(BackendResponseError, match="script exhausted after 1 replies"):
        await backend.complete(ask("again"))

    assert backend.calls == 2


async def test_exception_replies_are_raised_and_completions_are_returned_as_is() -> None:
    canned = Completion(text="full", model="m", usage=TokenUsage(1, 2))
    backend = ScriptedBackend([BackendTimeout("too slow"), canned])

    with pytest.raises(BackendTimeout, match="too slow"):
        await backend.complete(ask())
    assert await backend.complete(ask()) is canned


async def test_a_callable_script_answers_from_the_request() -> None:
    def respond(request: CompletionRequest) -> str:
        return request.messages[-1].content.upper()

    backend = ScriptedBackend(respond)

    assert (await backend.complete(ask("shout"))).text == "SHOUT"
    assert backend.remaining == 0
    with pytest.raises(TypeError):
        backend.push("x")


async def test_usage_is_estimated_unless_fixed() -> None:
    estimated = await ScriptedBackend(["x" * 8]).complete(ask("y" * 12))
    fixed = await ScriptedBackend(["x"], usage=TokenUsage(100, 5)).complete(ask())

    assert estimated.usage == TokenUsage(3, 2, estimated=True)
    assert fixed.usage == TokenUsage(100, 5)


async def test_concurrent_tasks_and_threads_each_get_a_distinct_reply() -> None:
    backend = ScriptedBackend([str(i) for i in range(40)], delay=0.001)

    async_results = await asyncio.gather(*(backend.complete(ask()) for _ in range(20)))
    thread_results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        text = asyncio.run(backend.complete(ask())).text
        with lock:
            thread_results.append(text)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    texts = [r.text for r in async_results] + thread_results
    assert sorted(texts, key=int) == [str(i) for i in range(40)]
    assert backend.calls == 40


async def test_a_closed_backend_refuses_calls() -> None:
    backend = ScriptedBackend(["x"])
    await backend.aclose()

    with pytest.raises(BackendError, match="closed"):
        await backend.complete(ask())
    assert backend.closed
