"""OpenAICompatibleBackend, through the real openai client over HTTP."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time

import pytest

from rlm_mcp.backends import LLMBackend, Message, OpenAICompatibleBackend, TokenUsage
from rlm_mcp.backends.base import CompletionRequest
from rlm_mcp.backends.openai_compat import backoff_delay, parse_retry_after
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.errors import BackendError, BackendResponseError, BackendTimeout
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.backends.backend_helpers import BackendFactory, ask
from tests.polling import eventually


class SleepRecorder:
    """An injected sleep that records delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_a_completion_returns_the_text_model_and_reported_usage(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(
        Reply(text="42", usage={"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})
    )
    backend = new_backend()

    result = await backend.complete(ask())

    assert result.text == "42"
    assert result.model == "test-model"
    assert result.usage == TokenUsage(input_tokens=11, output_tokens=3, estimated=False)
    assert result.finish_reason == "stop"
    assert result.attempts == 1
    assert result.latency_seconds > 0
    assert isinstance(backend, LLMBackend)


async def test_the_request_carries_messages_model_and_sampling_options(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue("ok")
    backend = new_backend(api_key="sk-secret", temperature=0.3, max_output_tokens=99)
    request = CompletionRequest(
        messages=(Message("system", "be brief"), Message("user", "hi")),
        model="other-model",
        stop=("</done>",),
    )

    result = await backend.complete(request)

    (seen,) = server.requests
    assert seen.json["model"] == "other-model"
    assert seen.json["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert seen.json["temperature"] == 0.3
    assert seen.json["max_tokens"] == 99
    assert seen.json["stop"] == ["</done>"]
    assert seen.headers["authorization"] == "Bearer sk-secret"
    assert result.model == "other-model"


async def test_request_options_override_endpoint_defaults_and_unset_ones_are_not_sent(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue("a", "b")
    backend = new_backend(temperature=0.3)

    await backend.complete(ask(temperature=0.0, max_tokens=5))
    await backend.complete(ask())

    first, second = (r.json for r in server.requests)
    assert first["temperature"] == 0.0
    assert first["max_tokens"] == 5
    assert second["temperature"] == 0.3
    assert "max_tokens" not in second
    assert "stop" not in second
    assert server.requests[1].headers["authorization"] == "Bearer not-needed"


async def test_reasoning_models_get_max_completion_tokens_instead_of_max_tokens(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue("a", "b")
    backend = new_backend(model="gpt-5-mini")

    await backend.complete(ask(max_tokens=100))
    await backend.complete(ask(max_tokens=100, model="openai/o4-mini"))

    for seen in server.requests:
        assert seen.json["max_completion_tokens"] == 100
        assert "max_tokens" not in seen.json


async def test_missing_usage_is_estimated_and_flagged(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(text="x" * 40, usage="omit"))

    result = await new_backend().complete(ask("y" * 80))

    assert result.usage == TokenUsage(input_tokens=20, output_tokens=10, estimated=True)


async def test_a_429_with_retry_after_waits_that_long_then_succeeds(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(429, "slow down", Retry_After="0.2"), "done")
    backend = new_backend()

    started = time.monotonic()
    result = await backend.complete(ask())
    elapsed = time.monotonic() - started

    assert result.text == "done"
    assert result.attempts == 2
    assert elapsed >= 0.2
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.2


async def test_retry_after_ms_is_honoured_and_long_retry_after_is_capped(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(
        Reply.error(429, retry_after_ms="150"),
        Reply(status=503, headers={"Retry-After": "3600"}),
        "ok",
    )
    sleeps = SleepRecorder()
    backend = new_backend(sleep=sleeps, max_retry_after=7.0)

    await backend.complete(ask())

    assert sleeps.delays == [pytest.approx(0.15), 7.0]


async def test_503_twice_then_success_returns_the_answer_on_the_third_attempt(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(503), Reply.error(503), "third time lucky")

    result = await new_backend().complete(ask())

    assert result.text == "third time lucky"
    assert result.attempts == 3
    assert len(server.requests) == 3


async def test_backoff_grows_exponentially_with_jitter_between_retries(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(500), Reply.error(502), Reply.error(504), "ok")
    sleeps = SleepRecorder()
    backend = new_backend(sleep=sleeps, backoff_base=0.5, rng=random.Random(7))

    await backend.complete(ask())

    assert len(sleeps.delays) == 3
    for retry, delay in enumerate(sleeps.delays, start=1):
        ceiling = 0.5 * 2 ** (retry - 1)
        assert ceiling / 2 <= delay <= ceiling


async def test_persistent_500_exhausts_retries_and_reports_the_attempts(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(*[Reply.error(500, "upstream exploded")] * 3)
    backend = new_backend(max_retries=2)

    with pytest.raises(BackendResponseError) as caught:
        await backend.complete(ask())

    message = str(caught.value)
    assert "HTTP 500" in message
    assert "upstream exploded" in message
    assert "3 attempts" in message
    assert "test-model" in message
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_a_non_retryable_client_error_fails_at_once_with_the_provider_message(
    server: LoopbackLLMServer, new_backend: BackendFactory, status: int
) -> None:
    server.enqueue(Reply.error(status, "model 'nope' does not exist"))

    with pytest.raises(BackendResponseError) as caught:
        await new_backend().complete(ask())

    assert f"HTTP {status}" in str(caught.value)
    assert "model 'nope' does not exist" in str(caught.value)
    assert "1 attempt" in str(caught.value)
    assert len(server.requests) == 1


async def test_x_should_retry_false_stops_retrying_a_server_error(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply.error(500, "do not bother", x_should_retry="false"))

    with pytest.raises(BackendResponseError):
        await new_backend().complete(ask())

    assert len(server.requests) == 1


async def test_a_server_slower_than_the_timeout_raises_backend_timeout_after_retries(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(text="late", delay=5.0), Reply(text="late", delay=5.0))
    backend = new_backend(timeout_seconds=0.2, max_retries=1)

    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await backend.complete(ask())

    assert time.monotonic() - started < 2.0
    assert "0.2s" in str(caught.value)
    assert "test-model" in str(caught.value)
    assert "2 attempts" in str(caught.value)
    assert len(server.requests) == 2
    await eventually(lambda: server.client_disconnects == 2)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>Bad Gateway</html>", "not JSON"),
        (json.dumps({"object": "chat.completion", "choices": []}), "no choices"),
        (json.dumps({"choices": [{"index": 0}]}), "no message"),
        (
            json.dumps(
                {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": None},
                            "finish_reason": "length",
                        }
                    ]
                }
            ),
            "content is null (finish_reason=length)",
        ),
        (json.dumps(["not", "an", "object"]), "expected a JSON object"),
        (json.dumps({"error": {"message": "quota gone"}}), "quota gone"),
    ],
)
async def test_an_unusable_body_raises_a_precise_response_error(
    server: LoopbackLLMServer, new_backend: BackendFactory, body: str, expected: str
) -> None:
    server.enqueue(Reply(body=body))

    with pytest.raises(BackendResponseError) as caught:
        await new_backend().complete(ask())

    assert expected in str(caught.value)
    assert len(server.requests) == 1


async def test_a_refusal_is_reported_as_such(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    body = {"choices": [{"message": {"content": None, "refusal": "I can't help with that"}}]}
    server.enqueue(Reply(body=json.dumps(body)))

    with pytest.raises(BackendResponseError, match="refused: I can't help with that"):
        await new_backend().complete(ask())


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_endpoint_raises_backend_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_unused_port()}/v1"
    backend = OpenAICompatibleBackend(
        ModelEndpoint(model="m", base_url=url, max_retries=1), backoff_base=0.001
    )
    try:
        with pytest.raises(BackendError) as caught:
            await backend.complete(ask())
    finally:
        await backend.aclose()

    assert not isinstance(caught.value, BackendTimeout | BackendResponseError)
    assert url in str(caught.value)
    assert "2 attempts" in str(caught.value)


async def test_cancelling_an_in_flight_call_returns_promptly_and_closes_the_connection(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.enqueue(Reply(hang=True))
    backend = new_backend(timeout_seconds=30.0)
    task = asyncio.create_task(backend.complete(ask()))
    await eventually(lambda: server.in_flight == 1)

    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 1.0
    await eventually(lambda: server.client_disconnects == 1 and server.in_flight == 0)
    assert len(server.requests) == 1


async def test_concurrent_calls_overlap_on_the_wire(
    server: LoopbackLLMServer, new_backend: BackendFactory
) -> None:
    server.latency = 0.2
    server.responder = lambda body: f"echo {body['messages'][0]['content']}"
    backend = new_backend()

    results = await asyncio.gather(*(backend.complete(ask(f"q{i}")) for i in range(4)))

    assert [r.text for r in results] == [f"echo q{i}" for i in range(4)]
    assert server.max_concurrent > 1


async def test_aclose_closes_the_http_client(new_backend: BackendFactory) -> None:
    backend = new_backend()

    await backend.aclose()

    assert backend._client.is_closed()


def test_parse_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_700_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": date}, now=now + 60) == 0.0


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", ""])
def test_parse_retry_after_ignores_values_it_cannot_use(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}) is None


def test_parse_retry_after_without_the_header_is_none() -> None:
    assert parse_retry_after({"content-type": "application/json"}) is None


def test_backoff_delay_is_capped_and_never_below_half_the_ceiling() -> None:
    rng = random.Random(1)
    for retry in range(1, 12):
        delay = backoff_delay(retry, base=0.5, cap=20.0, rng=rng)
        ceiling = min(20.0, 0.5 * 2 ** (retry - 1))
        assert ceiling / 2 <= delay <= ceiling
