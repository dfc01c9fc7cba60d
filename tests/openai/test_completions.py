"""The real ``openai`` client against ``/v1`` of ``rlm-mcp serve --transport http``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

from rlm_mcp.testing import LoopbackLLMServer, Responder

from .conftest import MODEL, ROOT_MODEL, Served

Script = Callable[[Responder], LoopbackLLMServer]

NEEDLE = "NEEDLE: the launch code is 7315-ALPHA"
FIND_NEEDLE = (
    "```python\n"
    'line = next(l for l in context.splitlines() if l.startswith("NEEDLE:"))\n'
    "FINAL(line)\n"
    "```"
)


def big_document(size: int = 2_700_000) -> str:
    lines = [f"line {i:07d}: nothing to see here, keep scrolling along" for i in range(size // 52)]
    lines.insert(len(lines) // 2, NEEDLE)
    text = "\n".join(lines)
    assert len(text.encode()) > 2_600_000
    return text


def find_needle(body: dict[str, Any]) -> str:
    return FIND_NEEDLE


def messages_over(document: str) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": "You answer from the document."},
        {"role": "user", "content": document},
        {"role": "assistant", "content": "I have read it."},
        {"role": "user", "content": "Which line gives the launch code? Quote it."},
    ]


def test_models_lists_the_rlm_configuration(served: Served) -> None:
    with served.client() as client:
        models = client.models.list()
        assert [m.id for m in models.data] == [MODEL]
        assert client.models.retrieve(MODEL).id == MODEL
        assert client.models.retrieve(ROOT_MODEL).id == MODEL  # the bare name too


def test_a_27_mb_conversation_is_context_not_the_roots_window(
    served: Served, script: Script
) -> None:
    llm = script(find_needle)
    before = len(llm.requests)
    with served.client() as client:
        completion = client.chat.completions.create(
            model=MODEL, messages=messages_over(big_document())
        )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == NEEDLE
    assert choice.finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    calls = llm.requests[before:]
    assert calls, "the root model was never called"
    # The megabytes went to the REPL, not into any model call.
    assert all(len(str(c.json["messages"])) < 200_000 for c in calls)
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens < 100_000
    rlm = (completion.model_extra or {})["rlm"]
    assert rlm["status"] == "completed"
    assert rlm["limit"] is None and rlm["error_kind"] is None
    assert rlm["trajectory"] is None or rlm["trajectory"].endswith(".jsonl")
    assert "session" in rlm


def test_the_same_streamed_role_first_content_then_finish_usage_and_done(
    served: Served, script: Script
) -> None:
    script(find_needle)
    with served.client() as client:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=messages_over(big_document()),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == NEEDLE
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0


def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    served: Served, script: Script
) -> None:
    script(lambda body: '```python\nFINAL("' + "word " * 200 + '")\n```')
    with served.client() as client:
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say many words."}], max_tokens=5
        )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == ("word " * 4)[:20]


def test_a_guardrail_gives_the_partial_answer_labelled_with_finish_reason_length(
    served: Served, script: Script
) -> None:
    script(lambda body: "```python\nprint(len(context))\n```")
    with served.client() as client:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "some text\n" * 10},
                {"role": "user", "content": "How long is it?"},
            ],
            extra_body={"rlm": {"limits": {"max_iterations": 1}}},
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    content = choice.message.content or ""
    assert content.startswith(
        ("[partial answer: the query stopped at max_iterations]", "[no answer: the query stopped")
    ), content
    rlm = (completion.model_extra or {})["rlm"]
    assert rlm["status"] == "limit_reached" and rlm["limit"] == "max_iterations"


def test_temperature_and_seed_reach_the_model(served: Served, script: Script) -> None:
    llm = script(lambda body: '```python\nFINAL("ok")\n```')
    before = len(llm.requests)
    with served.client() as client:
        completion = client.chat.completions.create(
            model=ROOT_MODEL,
            messages=[{"role": "user", "content": "Answer ok."}],
            temperature=0.25,
            seed=1234,
        )
    assert completion.model == MODEL
    sent = [r.json for r in llm.requests[before:]]
    assert sent and all(b["temperature"] == 0.25 and b["seed"] == 1234 for b in sent)


def test_a_repository_inside_the_allowed_roots_is_loaded_and_asked(
    served: Served, script: Script
) -> None:
    repo = served.tmp / "calc"
    (repo / "calc").mkdir(parents=True, exist_ok=True)
    (repo / "calc" / "ops.py").write_text("def divide(a, b):\n    return a / b\n")
    script(lambda body: '```python\nFINAL("calc/ops.py:1 defines divide")\n```')
    with served.client() as client:
        for _ in range(2):  # the second request finds it loaded
            completion = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Where is divide defined?"}],
                extra_body={"rlm": {"repository": str(repo)}},
            )
            assert completion.choices[0].message.content == "calc/ops.py:1 defines divide"
            rlm = (completion.model_extra or {})["rlm"]
            assert rlm["status"] == "completed"
            assert {"text": "calc/ops.py:1", "verified": True, "nearest": []} in rlm["citations"]


def test_a_document_pasted_with_its_question_in_one_message_is_context_too(
    served: Served, script: Script
) -> None:
    llm = script(find_needle)
    before = len(llm.requests)
    document = big_document() + "\n\nWhat is the launch code?"
    with served.client() as client:
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": document}]
        )
    assert completion.choices[0].message.content == NEEDLE
    calls = llm.requests[before:]
    assert calls and all(len(str(c.json["messages"])) < 50_000 for c in calls)
    told = str(calls[0].json["messages"])
    assert "What is the launch code?" in told  # the question's end is shown to the root
    assert "the last [user] block of `context`" in told
