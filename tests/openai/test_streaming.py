"""Streamed ``/v1/chat/completions``: heartbeats, errors after the headers, disconnects."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from rlm_mcp.testing import LoopbackLLMServer, Reply, Responder
from tests.polling import apoll

from .conftest import MODEL, TOKEN, Served

Script = Callable[[Responder], LoopbackLLMServer]
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is it?"}]


def read_stream(served: Served, payload: dict[str, object]) -> tuple[int, str, str]:
    """POST ``payload`` and read the whole response: status, content type, body text."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(payload),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.getheader("content-type", ""), response.read().decode()
    finally:
        conn.close()


def test_a_slow_query_sends_progress_and_heartbeats_then_the_answer(
    served: Served, script: Script
) -> None:
    replies = iter(["```python\nx = 41\nprint(x)\n```", "```python\nFINAL(str(x + 1))\n```"])
    script(lambda body: Reply(text=next(replies), delay=1.3))
    status, kind, body = read_stream(served, {"model": MODEL, "messages": ASK, "stream": True})
    assert status == 200 and kind.startswith("text/event-stream")
    lines = body.splitlines()
    comments = [line for line in lines if line.startswith(":")]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert any(c.startswith(": progress iteration 1/") for c in comments), comments
    assert ": heartbeat" in comments
    assert data[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"])
    assert text == "42"
    assert data[-1]["choices"][0]["finish_reason"] == "stop"
    assert data[-1]["rlm"]["status"] == "completed"
    assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"


def test_an_error_after_the_headers_is_one_error_event_then_done(
    served: Served, script: Script
) -> None:
    script(lambda body: Reply(text="bad key", status=401, delay=1.5))
    status, _, body = read_stream(served, {"model": MODEL, "messages": ASK, "stream": True})
    assert status == 200
    events = [line for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "auth" and error["type"] == "server_error"


def test_a_fast_failure_while_streaming_is_a_proper_http_error(
    served: Served, script: Script
) -> None:
    script(lambda body: Reply.error(401, "bad key"))
    with served.client() as client, pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
    assert e.value.status_code == 502 and e.value.code == "auth"


async def test_a_client_leaving_mid_stream_cancels_the_query(
    served: Served, script: Script
) -> None:
    llm = script(lambda body: Reply(hang=True))
    gone = llm.client_disconnects
    async with served.aclient() as client:
        stream = await client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
        first = await stream.__anext__()
        assert first.choices[0].delta.role == "assistant"
        await apoll(lambda: llm.in_flight, 20, interval=0.05)
        assert llm.in_flight == 1
        await stream.close()
    await apoll(lambda: not llm.in_flight and llm.client_disconnects > gone, 20, interval=0.05)
    assert llm.in_flight == 0
    assert llm.client_disconnects > gone
