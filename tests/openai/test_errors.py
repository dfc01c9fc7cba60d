"""Every ``/v1`` error is OpenAI-shaped JSON with a fitting status, through the real client."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from rlm_mcp.testing import LoopbackLLMServer, Reply, Responder
from tests.polling import apoll, eventually

from .conftest import MAX_BODY_MB, MAX_CONCURRENT, MODEL, TOKEN, Served

Script = Callable[[Responder], LoopbackLLMServer]
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is it?"}]


def raw(
    served: Served,
    body: bytes | None,
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sent.update(headers or {})
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data)
    finally:
        conn.close()


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def test_a_wrong_token_is_401(served: Served) -> None:
    with served.client(api_key="wrong") as client, pytest.raises(openai.AuthenticationError) as e:
        client.models.list()
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"
    status, headers, body = raw(
        served, None, method="GET", path="/v1/models", headers={"Authorization": ""}
    )
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert error_of(body)["type"] == "authentication_error"


def test_an_unknown_model_is_404(served: Served) -> None:
    with served.client() as client, pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-unknown", messages=ASK)
    assert e.value.code == "model_not_found" and e.value.param == "model"
    with served.client() as client, pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-unknown")


@pytest.mark.parametrize(
    ("payload", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "invalid_type", None),
        (json.dumps({"model": MODEL}).encode(), "invalid_type", "messages"),
        (json.dumps({"model": MODEL, "messages": []}).encode(), "invalid_type", "messages"),
        (
            json.dumps(
                {"model": MODEL, "messages": [{"role": "assistant", "content": "hi"}]}
            ).encode(),
            "no_user_message",
            "messages[0]",
        ),
        (
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "  "}]}).encode(),
            "no_user_message",
            "messages[0]",
        ),
        (
            json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            "invalid_value",
            "messages[0].role",
        ),
        (
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 5}]}).encode(),
            "invalid_type",
            "messages[0].content",
        ),
        (
            json.dumps(
                {
                    "model": MODEL,
                    "messages": [
                        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}
                    ],
                }
            ).encode(),
            "unsupported_content",
            "messages[0].content[0].type",
        ),
        (json.dumps({"model": 3, "messages": ASK}).encode(), "invalid_type", "model"),
        (
            json.dumps({"model": MODEL, "messages": ASK, "temperature": "hot"}).encode(),
            "invalid_type",
            "temperature",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "temperature": 9}).encode(),
            "invalid_value",
            "temperature",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "seed": 1.5}).encode(),
            "invalid_type",
            "seed",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "max_tokens": 0}).encode(),
            "invalid_value",
            "max_tokens",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "max_tokens": True}).encode(),
            "invalid_type",
            "max_tokens",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "stream": "yes"}).encode(),
            "invalid_type",
            "stream",
        ),
        (json.dumps({"model": MODEL, "messages": ASK, "n": 2}).encode(), "unsupported_value", "n"),
        (json.dumps({"model": MODEL, "messages": ASK, "rlm": []}).encode(), "invalid_type", "rlm"),
        (
            json.dumps({"model": MODEL, "messages": ASK, "rlm": {"repo": "x"}}).encode(),
            "unknown_parameter",
            "rlm.repo",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "rlm": {"limits": 3}}).encode(),
            "invalid_type",
            "rlm.limits",
        ),
        (
            json.dumps({"model": MODEL, "messages": ASK, "rlm": {"session": 7}}).encode(),
            "invalid_type",
            "rlm.session",
        ),
    ],
)
def test_a_bad_request_is_400_naming_the_field(
    served: Served, payload: bytes, code: str, param: str | None
) -> None:
    before = len(served.llm.requests)
    status, _, body = raw(served, payload)
    assert status == 400
    error = error_of(body)
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert len(served.llm.requests) == before  # nothing reached the model


def test_other_transport_errors_are_openai_shaped(served: Served) -> None:
    status, _, body = raw(served, b"{}", headers={"Content-Type": "text/plain"})
    assert status == 400 and error_of(body)["code"] == "invalid_content_type"
    status, headers, body = raw(served, None, method="GET")
    assert status == 405 and headers["allow"] == "POST"
    status, _, body = raw(served, b"{}", path="/v1/embeddings")
    assert status == 404 and error_of(body)["code"] == "unknown_route"
    status, _, body = raw(
        served, None, method="GET", path="/v1/models", headers={"Host": "evil.example"}
    )
    assert status == 421 and error_of(body)["code"] == "invalid_host"
    status, _, body = raw(
        served, None, method="GET", path="/v1/models", headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and error_of(body)["code"] == "invalid_origin"
    status, _, _ = raw(
        served, None, method="GET", path="/v1/models", headers={"Origin": "http://localhost:3000"}
    )
    assert status == 200


def test_a_body_over_the_cap_is_413(served: Served) -> None:
    big = "x" * (MAX_BODY_MB * 1024 * 1024 + 10)
    with served.client() as client, pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": big}])
    assert e.value.status_code == 413 and e.value.code == "request_too_large"
    status, _, _ = raw(served, b"{}", headers={"Content-Length": str(10**12)})
    assert status == 413


def test_a_repository_outside_the_allowed_roots_is_refused(served: Served) -> None:
    with served.client() as client, pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"rlm": {"repository": "/"}}
        )
    assert e.value.code == "path_not_allowed" and e.value.param == "rlm.repository"
    with served.client() as client, pytest.raises(openai.BadRequestError) as e2:
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            extra_body={"rlm": {"repository": str(served.tmp / "missing")}},
        )
    assert e2.value.code == "repository_not_found"


def test_bad_limits_are_400(served: Served) -> None:
    with served.client() as client, pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"rlm": {"limits": {"max_llm_calls": "many"}}}
        )
    assert e.value.code == "invalid_value"


def test_a_provider_failure_is_502_with_its_kind(served: Served, script: Script) -> None:
    script(lambda body: Reply.error(401, "bad key"))
    with served.client() as client, pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=ASK)
    assert e.value.status_code == 502 and e.value.code == "auth"
    assert e.value.type == "server_error"


def test_the_wall_limit_with_no_answer_is_504(served: Served, script: Script) -> None:
    script(lambda body: Reply(hang=True))
    with served.client() as client, pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"rlm": {"limits": {"max_wall_seconds": 1}}}
        )
    assert e.value.status_code == 504 and e.value.code == "max_wall_seconds"


async def test_a_full_server_answers_429_and_frees_the_slots(
    served: Served, script: Script
) -> None:
    llm = script(lambda body: Reply(hang=True))
    async with served.aclient() as client:
        streams = [
            await client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
            for _ in range(MAX_CONCURRENT)
        ]
        await apoll(lambda: llm.in_flight >= MAX_CONCURRENT, 20, interval=0.05)
        with pytest.raises(openai.RateLimitError) as e:
            await client.chat.completions.create(model=MODEL, messages=ASK)
        assert e.value.code == "too_many_concurrent_queries"
        assert e.value.response.headers["retry-after"] == "1"
        for stream in streams:
            await stream.close()
    await eventually(lambda: llm.in_flight == 0, 20, "every slot freed", interval=0.05)
