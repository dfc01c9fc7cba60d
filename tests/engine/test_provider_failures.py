"""Provider failures in a whole query: nothing outlives it, every attempt is paid for, and
the failure is named precisely. A real sandbox, the real openai client, a scripted loopback."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import anyio
import pytest

from rlm_mcp.backends import Message, Pricing
from rlm_mcp.budget import Limits
from rlm_mcp.engine.calls import QueryRun
from rlm_mcp.engine.trajectory import TrajectoryWriter
from rlm_mcp.errors import TimeLimitExceeded, TimeLimitWhileRateLimited
from rlm_mcp.index import Repository
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.engine.engine_helpers import EngineFactory, Script, code, trajectory_events
from tests.polling import eventually, wait_until

CATCH_AND_FINISH = """
try:
    {call}
except Exception as e:
    FINAL(f"{{type(e).__name__}}: {{e}}")
"""


def catching(call: str) -> str:
    return code(CATCH_AND_FINISH.format(call=call))


async def test_a_failed_prompt_cancels_its_batch_and_no_request_outlives_the_query(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    siblings = 5

    def sub(prompt: str) -> Reply:
        if prompt == "bad":
            # Fail only once every sibling is on the wire, so there is something to cancel.
            wait_until(lambda: llm.in_flight >= siblings + 1, timeout=5.0)
            return Reply.error(400, "the bad prompt")
        return Reply(hang=True)

    prompts = ["bad", *(f"p{i}" for i in range(siblings))]
    llm.responder = Script([catching(f"llm_query_batched({prompts!r})")], sub=sub)

    started = time.monotonic()
    with anyio.fail_after(30):
        result = await make_engine(timeout=10.0, retries=2).run("q?", small_repo)

    assert result.status == "completed", result
    assert "HTTP 400" in result.answer and "the bad prompt" in result.answer
    await eventually(lambda: llm.in_flight == 0, timeout=2.0)
    assert time.monotonic() - started < 8.0
    assert llm.ended == len(llm.requests) == 1 + len(prompts)
    assert llm.client_disconnects == siblings
    assert llm.errors == []
    sub_usage = result.usage.models["sub-model"]
    assert (sub_usage.calls, sub_usage.attempts) == (0, len(prompts))
    assert (sub_usage.failed_attempts, sub_usage.cancelled_attempts) == (len(prompts), siblings)


async def test_a_sub_call_still_running_when_the_query_ends_is_cancelled_and_counted(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = Script(
        [code('llm_query("slow")'), code('FINAL("moved on")')], sub=lambda p: Reply(hang=True)
    )
    engine = make_engine(limits=Limits(exec_timeout_seconds=1.0), timeout=30.0)

    with anyio.fail_after(30):
        result = await engine.run("q?", small_repo)

    assert (result.status, result.answer) == ("completed", "moved on")
    await eventually(lambda: llm.in_flight == 0, timeout=2.0)
    assert llm.client_disconnects == 1
    sub_usage = result.usage.models["sub-model"]
    assert (sub_usage.calls, sub_usage.attempts, sub_usage.cancelled_attempts) == (0, 1, 1)


async def test_retried_and_failed_attempts_are_counted_in_usage(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    tries: dict[str, int] = {}

    def sub(prompt: str) -> str | Reply:
        tries[prompt] = tries.get(prompt, 0) + 1
        if prompt == "flaky":
            return Reply.error(503) if tries[prompt] <= 2 else "fine"
        return Reply.error(400, "never")

    llm.enqueue(Reply.error(429, Retry_After="0"))
    llm.responder = Script(
        [
            code(
                'a = llm_query("flaky")\ntry:\n    llm_query("broken")\nexcept Exception:\n    pass\nFINAL(a)'
            )
        ],
        sub=sub,
    )

    result = await make_engine(retries=2).run("q?", small_repo)

    assert result.answer == "fine"
    root, sub_model = result.usage.models["root-model"], result.usage.models["sub-model"]
    assert (root.calls, root.attempts, root.failed_attempts) == (1, 2, 1)
    assert (sub_model.calls, sub_model.attempts, sub_model.failed_attempts) == (1, 4, 3)
    usage = result.as_dict()["usage"]
    assert (usage["calls"], usage["attempts"], usage["failed_attempts"]) == (2, 6, 4)
    assert usage["by_model"]["sub-model"]["attempts"] == 4
    assert len(llm.requests) == 6


async def test_tokens_billed_for_an_unusable_answer_are_counted(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    cut_short = {
        "choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 700, "completion_tokens": 9000, "total_tokens": 9700},
    }
    llm.responder = Script(
        [catching('llm_query("think hard")')], sub=lambda p: Reply(body=json.dumps(cut_short))
    )

    result = await make_engine(
        pricing=Pricing(overrides={"sub-model": (Decimal(1), Decimal(2))})
    ).run("q?", small_repo)

    assert "content is null" in result.answer
    sub_usage = result.usage.models["sub-model"]
    assert (sub_usage.calls, sub_usage.attempts, sub_usage.failed_attempts) == (0, 1, 1)
    assert (sub_usage.input_tokens, sub_usage.output_tokens) == (700, 9000)
    assert sub_usage.cost_usd == Decimal("0.0187")


async def test_models_missing_from_the_price_table_are_marked_unpriced(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    def dated(body: dict[str, Any]) -> Reply:
        reply = {
            "model": "my-local-model-2025-01-01",
            "choices": [{"message": {"role": "assistant", "content": "local"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        }
        return Reply(body=json.dumps(reply))

    priced_sub = Script(
        [code('a = llm_query("x")\nb = llm_query("x")\nFINAL(a + b)')], sub=lambda p: "ok"
    )
    llm.responder = priced_sub
    with_price = await make_engine(pricing=Pricing(), sub_model="gpt-4o-mini").run("q?", small_repo)
    llm.responder = Script(
        [code('a = llm_query("x")\nb = llm_query("x")\nFINAL(a + b)')], sub=lambda p: dated({})
    )
    local = await make_engine(pricing=Pricing(), sub_model="my-local-model").run("q?", small_repo)

    by_model = with_price.as_dict()["usage"]["by_model"]
    assert by_model["root-model"]["priced"] is False
    assert by_model["gpt-4o-mini"]["priced"] is True
    assert Decimal(by_model["gpt-4o-mini"]["cost_usd"]) > 0
    assert with_price.as_dict()["usage"]["unpriced_models"] == ["root-model"]
    assert local.usage.cache_hits == 1
    assert {name: m.priced for name, m in local.usage.models.items()} == {
        "root-model": False,
        "my-local-model-2025-01-01": False,
        "my-local-model": False,
    }
    assert local.usage.cost_usd == 0


async def test_a_query_whose_root_is_rate_limited_for_good_says_so(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(429, "requests per day exhausted", Retry_After="0")

    result = await make_engine(retries=1).run("q?", small_repo)

    assert result.status == "error"
    assert result.error is not None
    assert "rate-limited" in result.error and "HTTP 429" in result.error
    assert result.usage.models["root-model"].failed_attempts == 2


async def test_a_root_reply_cut_mid_body_is_reported_as_a_lost_connection(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply(text=code('FINAL("x")'), cut_after=30)

    result = await make_engine(retries=1).run("q?", small_repo)

    assert result.status == "error"
    assert result.error is not None
    assert "lost mid-response" in result.error and "could not reach" not in result.error


async def test_a_call_cut_off_while_waiting_on_a_429_is_a_rate_limited_time_limit(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(429, "slow down", Retry_After="30")
    engine = make_engine(retries=2)
    run = QueryRun(
        engine.calls, small_repo, Limits(max_wall_seconds=0.5), None, TrajectoryWriter(None)
    )
    try:
        with anyio.fail_after(10), pytest.raises(TimeLimitWhileRateLimited) as caught:
            await run.root_call([Message("user", "hi")])
    finally:
        await run.close()

    assert isinstance(caught.value, TimeLimitExceeded)
    assert (caught.value.limit, caught.value.kind) == ("max_wall_seconds", "rate_limited")
    assert "HTTP 429" in str(caught.value) and "Retry-After 30s" in str(caught.value)
    assert run.limit_kind("max_wall_seconds") == "rate_limited"
    assert run.limit_kind("max_llm_calls") is None
    root = run.budget.usage.models["root-model"]
    assert (root.calls, root.attempts, root.failed_attempts) == (0, 1, 1)


async def test_a_plain_slow_call_cut_off_at_the_wall_limit_is_not_called_rate_limited(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply(text="late", delay=5.0)
    engine = make_engine(timeout=30.0)
    run = QueryRun(
        engine.calls, small_repo, Limits(max_wall_seconds=0.3), None, TrajectoryWriter(None)
    )
    try:
        with anyio.fail_after(10), pytest.raises(TimeLimitExceeded) as caught:
            await run.root_call([Message("user", "hi")])
    finally:
        await run.close()

    assert not isinstance(caught.value, TimeLimitWhileRateLimited)
    assert run.limit_kind("max_wall_seconds") is None
    assert run.budget.usage.models["root-model"].cancelled_attempts == 1
    await eventually(lambda: llm.in_flight == 0)


async def test_a_query_rate_limited_until_its_wall_limit_tells_the_model_why(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(429, "slow down", Retry_After="30")

    with anyio.fail_after(30):
        result = await make_engine(retries=1, limits=Limits(max_wall_seconds=0.5)).run(
            "q?", small_repo
        )

    assert (result.status, result.limit) == ("limit_reached", "max_wall_seconds")
    notes = [e.get("message", "") for e in trajectory_events(result.trajectory)]
    assert any("stopping:" in n and "rate limit" in n for n in notes)
    assert result.usage.models["root-model"].failed_attempts >= 2


async def test_the_result_names_the_kind_of_failure(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(429, "requests per day exhausted", Retry_After="0")
    limited = await make_engine(retries=1).run("q?", small_repo)
    assert (limited.status, limited.error_kind) == ("error", "rate_limited")
    assert limited.as_dict()["error_kind"] == "rate_limited"

    llm.responder = lambda body: Reply(text=code('FINAL("x")'), cut_after=30)
    cut = await make_engine(retries=0).run("q?", small_repo)
    assert (cut.status, cut.error_kind) == ("error", "connection_lost")

    llm.responder = lambda body: Reply(text=code('FINAL("fine")'))
    ok = await make_engine().run("q?", small_repo)
    assert (ok.status, ok.error_kind) == ("completed", None)


async def test_a_query_stopped_by_the_wall_limit_while_rate_limited_says_rate_limited(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(429, "slow down", Retry_After="30")
    result = await make_engine(retries=2, limits=Limits(max_wall_seconds=1)).run("q?", small_repo)
    assert result.status == "limit_reached"
    assert (result.limit, result.error_kind) == ("max_wall_seconds", "rate_limited")


async def test_a_model_that_never_answers_is_not_asked_again_for_the_final_answer(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply(hang=True)
    t0 = time.monotonic()
    result = await make_engine(retries=0, limits=Limits(max_wall_seconds=1.5)).run("q?", small_repo)
    assert time.monotonic() - t0 < 10  # no 15 s final-answer allowance spent on a dead model
    assert result.status == "limit_reached" and result.limit == "max_wall_seconds"
    assert len(llm.requests) == 1
