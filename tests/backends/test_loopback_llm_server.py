"""LoopbackLLMServer: scripting, recording and clean shutdown."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.polling import wait_until


def _post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def _chat(server: LoopbackLLMServer, content: str = "hi") -> tuple[int, dict[str, Any]]:
    return _post(
        f"{server.base_url}/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": content}]},
    )


def _loopback_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("loopback-llm")]


def test_the_sync_openai_client_gets_scripted_replies_in_order(
    server: LoopbackLLMServer,
) -> None:
    server.enqueue("first", Reply(text="second", finish_reason="length"))
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        one = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
        two = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}])

    assert one.choices[0].message.content == "first"
    assert two.choices[0].message.content == "second"
    assert two.choices[0].finish_reason == "length"
    assert one.usage is not None and one.usage.completion_tokens >= 1
    assert [r.json["messages"][0]["content"] for r in server.requests] == ["a", "b"]


def test_models_are_listed(server: LoopbackLLMServer) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        models = client.models.list()

    assert [m.id for m in models.data] == ["loopback-model"]
    assert server.requests == []
    assert [r.path for r in server.all_requests] == ["/v1/models"]


def test_an_empty_script_answers_500_script_exhausted(server: LoopbackLLMServer) -> None:
    status, body = _chat(server)

    assert status == 500
    assert body["error"]["message"] == "loopback server: script exhausted"


def test_the_responder_answers_by_content_once_the_queue_is_empty(
    server: LoopbackLLMServer,
) -> None:
    server.enqueue("queued")
    server.responder = lambda body: "sub" if "chunk" in body["messages"][-1]["content"] else "root"

    answers = [_chat(server, text)[1] for text in ("x", "read chunk 3", "y")]

    texts = [a["choices"][0]["message"]["content"] for a in answers]
    assert texts == ["queued", "sub", "root"]


def test_a_failing_responder_becomes_a_500_and_is_recorded(server: LoopbackLLMServer) -> None:
    def responder(body: dict[str, Any]) -> str:
        raise ValueError("no rule for this prompt")

    server.responder = responder

    status, body = _chat(server)

    assert status == 500
    assert "no rule for this prompt" in body["error"]["message"]
    assert server.errors == [
        "loopback server: responder raised ValueError: no rule for this prompt"
    ]


def test_error_replies_carry_openai_style_bodies_and_headers(
    server: LoopbackLLMServer,
) -> None:
    server.enqueue(Reply.error(429, "slow down", Retry_After="1"))
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps({"messages": []}).encode(),
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    with caught.value as err:
        assert err.code == 429
        assert err.headers["Retry-After"] == "1"
        assert json.loads(err.read())["error"]["message"] == "slow down"


def test_explicit_usage_is_sent_verbatim_and_omit_drops_it(server: LoopbackLLMServer) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    server.enqueue(Reply(text="a", usage=usage), Reply(text="b", usage="omit"))

    first = _chat(server)[1]
    second = _chat(server)[1]

    assert first["usage"] == usage
    assert "usage" not in second


def test_stop_returns_promptly_while_a_request_hangs_and_leaves_no_threads() -> None:
    server = LoopbackLLMServer().start()
    server.enqueue(Reply(hang=True))
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        body = b'{"messages": []}'
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: server.in_flight == 1)

        started = time.monotonic()
        server.stop()

        assert time.monotonic() - started < 1.0
        assert _loopback_threads() == []
    finally:
        sock.close()
        server.stop()


async def test_the_server_works_as_an_async_context_manager() -> None:
    async with LoopbackLLMServer() as server:
        server.enqueue("async")
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="k", max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "q"}]
            )

    assert reply.choices[0].message.content == "async"
    assert _loopback_threads() == []


def test_a_stopped_server_can_be_restarted_on_a_new_port() -> None:
    server = LoopbackLLMServer()
    with server:
        server.enqueue("one")
        assert _chat(server)[1]["choices"][0]["message"]["content"] == "one"
    with server:
        server.enqueue("two")
        assert _chat(server)[1]["choices"][0]["message"]["content"] == "two"
    assert len(server.requests) == 2


def test_base_url_needs_a_running_server() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = LoopbackLLMServer().base_url
