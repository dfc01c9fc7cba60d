"""How a provider failed, said precisely, and every attempt reported, through real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from rlm_mcp.backends import Attempt, OpenAICompatibleBackend, TokenUsage
from rlm_mcp.backends.base import CompletionRequest, Message
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.errors import (
    BackendAuthError,
    BackendConnectionLost,
    BackendError,
    BackendRateLimited,
    BackendResponseError,
    BackendTimeout,
    BackendUnreachable,
)
from rlm_mcp.testing import LoopbackLLMServer, Reply, ScriptedBackend
from tests.backends.backend_helpers import BackendFactory, ask
from tests.polling import eventually


def listened(text: str = "q") -> tuple[CompletionRequest, list[Attempt]]:
    """A request whose attempts are collected in the returned list."""
    seen: list[Attempt] = []
    return CompletionRequest(messages=(Message("user", text),), on_attempt=seen.append), seen


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_body_cut_mid_response_is_a_lost_connection_not_an_unreachable_endpoint(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(text="a long answer", cut_after=20), Reply(text="again", cut_after=5))
    request, seen = listened()

    with pytest.raises(BackendConnectionLost) as caught:
        await new_backend(max_retries=1).complete(request)

    message = str(caught.value)
    assert "lost mid-response" in message
    assert "could not reach" not in message
    assert "2 attempts" in message
    assert caught.value.kind == "connection_lost"
    assert len(server.requests) == 2
    assert [(a.outcome, a.kind) for a in seen] == [("failed", "connection_lost")] * 2


async def test_a_connection_closed_before_any_answer_is_a_lost_connection(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(drop=True), "recovered")
    request, seen = listened()

    result = await new_backend(max_retries=1).complete(request)

    assert result.text == "recovered"
    assert [(a.outcome, a.kind) for a in seen] == [("failed", "connection_lost"), ("ok", None)]


async def test_a_refused_connection_is_unreachable_and_says_could_not_reach() -> None:
    url = f"http://127.0.0.1:{_unused_port()}/v1"
    backend = OpenAICompatibleBackend(
        ModelEndpoint(model="m", base_url=url, max_retries=1), backoff_base=0.001
    )
    request, seen = listened()
    try:
        with pytest.raises(BackendUnreachable) as caught:
            await backend.complete(request)
    finally:
        await backend.aclose()

    assert f"could not reach {url}" in str(caught.value)
    assert "refused" in str(caught.value).lower()
    assert caught.value.kind == "unreachable"
    assert [(a.outcome, a.kind) for a in seen] == [("failed", "unreachable")] * 2


async def test_an_unknown_host_is_unreachable() -> None:
    backend = OpenAICompatibleBackend(
        ModelEndpoint(
            model="m",
            base_url="http://no-such-host.invalid/v1",
            api_key="k",
            max_retries=0,
            timeout_seconds=5,
        )
    )
    try:
        with pytest.raises(BackendUnreachable, match="could not reach"):
            await backend.complete(ask())
    finally:
        await backend.aclose()


async def test_429_through_every_retry_is_a_rate_limited_error(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(*[Reply.error(429, "tokens per minute exceeded", Retry_After="0")] * 3)
    request, seen = listened()

    with pytest.raises(BackendRateLimited) as caught:
        await new_backend(max_retries=2).complete(request)

    assert isinstance(caught.value, BackendResponseError)
    assert caught.value.kind == "rate_limited"
    assert "HTTP 429" in str(caught.value) and "tokens per minute exceeded" in str(caught.value)
    assert "3 attempts" in str(caught.value)
    assert [(a.kind, a.retry_after) for a in seen] == [("rate_limited", 0.0)] * 3


@pytest.mark.parametrize("status", [401, 403])
async def test_a_rejected_key_is_an_auth_error(
    server: LoopbackLLMServer, new_backend: BackendFactory, status: int
) -> None:
    server.enqueue(Reply.error(status, "invalid api key"))

    with pytest.raises(BackendAuthError) as caught:
        await new_backend().complete(ask())

    assert caught.value.kind == "auth"
    assert f"HTTP {status}" in str(caught.value) and "API key" in str(caught.value)
    assert len(server.requests) == 1


async def test_other_failures_keep_their_kinds(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(400, "bad"), Reply(text="late", delay=5.0))

    with pytest.raises(BackendResponseError) as bad:
        await new_backend().complete(ask())
    with pytest.raises(BackendTimeout) as late:
        await new_backend(timeout_seconds=0.2, max_retries=0).complete(ask())

    assert (bad.value.kind, late.value.kind) == ("bad_response", "timeout")
    assert BackendError.kind == "backend"


async def test_every_attempt_is_reported_retries_included(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(503), Reply.error(429, Retry_After="0"), "ok")
    request, seen = listened()

    result = await new_backend().complete(request)

    assert result.attempts == 3
    assert [(a.outcome, a.kind) for a in seen] == [
        ("failed", "bad_response"),
        ("failed", "rate_limited"),
        ("ok", None),
    ]
    assert {a.model for a in seen} == {"test-model"}


async def test_usage_reported_with_an_unusable_answer_is_passed_on(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 4000, "total_tokens": 4120},
    }
    server.enqueue(Reply(body=json.dumps(body)))
    request, seen = listened()

    with pytest.raises(BackendResponseError):
        await new_backend().complete(request)

    (attempt,) = seen
    assert attempt.outcome == "failed"
    assert attempt.usage == TokenUsage(input_tokens=120, output_tokens=4000)


async def test_an_attempt_cancelled_on_the_wire_is_reported_as_cancelled(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(hang=True))
    request, seen = listened()
    task = asyncio.create_task(new_backend(timeout_seconds=30.0).complete(request))
    await eventually(lambda: server.in_flight == 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert [a.outcome for a in seen] == ["cancelled"]
    await eventually(lambda: server.in_flight == 0 and server.ended == 1)


async def test_the_listener_is_not_part_of_the_request_identity() -> None:
    request, _ = listened("same")
    assert request == CompletionRequest(messages=(Message("user", "same"),))
    assert "on_attempt" not in repr(request)


async def test_the_scripted_backend_reports_attempts_too() -> None:
    backend = ScriptedBackend(["fine", BackendRateLimited("slow down")], model="s")
    ok, seen_ok = listened()
    bad, seen_bad = listened()

    await backend.complete(ok)
    with pytest.raises(BackendRateLimited):
        await backend.complete(bad)

    assert seen_ok == [Attempt("s", "ok")]
    assert seen_bad == [Attempt("s", "failed", kind="rate_limited")]
