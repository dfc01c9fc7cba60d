"""``rlm.session``: a handle in every response continues the session in the next request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from rlm_mcp.testing import LoopbackLLMServer, Responder

from .conftest import MODEL, Served

Script = Callable[[Responder], LoopbackLLMServer]


def remember_then_recall(body: dict[str, Any]) -> str:
    text = "\n".join(str(m.get("content") or "") for m in body["messages"])
    if "RECALL" in text.rsplit("REMEMBER", 1)[-1]:
        return "```python\nFINAL(str(kept + 1))\n```"
    return '```python\nkept = 41\nFINAL("kept")\n```'


def test_a_session_keeps_repl_variables_between_requests(served: Served, script: Script) -> None:
    script(remember_then_recall)
    with served.client() as client:
        first = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "REMEMBER a number"}]
        )
        handle = (first.model_extra or {})["rlm"]["session"]
        assert isinstance(handle, str) and handle
        assert first.choices[0].message.content == "kept"
        second = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "RECALL it plus one"}],
            extra_body={"rlm": {"session": handle}},
        )
    assert second.choices[0].message.content == "42"
    assert (second.model_extra or {})["rlm"]["session"] == handle


def test_an_unknown_session_is_400_unknown_session(served: Served, script: Script) -> None:
    llm = script(remember_then_recall)
    before = len(llm.requests)
    with served.client() as client, pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "RECALL"}],
            extra_body={"rlm": {"session": "no-such-session"}},
        )
    assert e.value.code in ("unknown_session", "session_expired")
    assert e.value.param == "rlm.session"
    assert len(llm.requests) == before


def test_an_unknown_session_while_streaming_is_a_proper_400(served: Served, script: Script) -> None:
    script(remember_then_recall)
    with served.client() as client, pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "RECALL"}],
            stream=True,
            extra_body={"rlm": {"session": "no-such-session"}},
        )
    assert e.value.code in ("unknown_session", "session_expired")
