from __future__ import annotations

from decimal import Decimal

import pytest

from rlm_mcp.backends import Attempt, Pricing, TokenUsage
from rlm_mcp.budget import Budget, CallUsage, Limits
from rlm_mcp.errors import (
    CallLimitExceeded,
    ConfigError,
    CostLimitExceeded,
    DepthLimitExceeded,
    TokenLimitExceeded,
)


def test_per_query_limits_only_tighten() -> None:
    server = Limits(max_llm_calls=10, max_cost_usd=Decimal("1"))
    assert server.tighten({"max_llm_calls": 100}).max_llm_calls == 10
    assert server.tighten({"max_llm_calls": 3, "max_cost_usd": 0.5}).max_cost_usd == Decimal("0.5")


@pytest.mark.parametrize(
    "bad",
    [
        {"max_llm_calls": -1},
        {"max_llm_calls": "many"},
        {"max_cost_usd": "x"},
        {"max_wall_seconds": 0},
        {"nope": 1},
    ],
)
def test_bad_limits_are_rejected_with_the_field_name(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Limits.from_mapping(bad)


def test_call_limit_counts_in_flight_calls() -> None:
    budget = Budget(Limits(max_llm_calls=2))
    budget.check_before_call()
    budget.check_before_call()
    with pytest.raises(CallLimitExceeded, match="max_llm_calls=2"):
        budget.check_before_call()


def test_final_allowance_passes_call_limit_but_not_far_past_tokens() -> None:
    budget = Budget(Limits(max_llm_calls=1, max_tokens=1000))
    budget.check_before_call()
    budget.book(CallUsage("m", answer=TokenUsage(900, 0)))
    budget.check_before_call(final=True, input_tokens=150)
    with pytest.raises(TokenLimitExceeded):
        budget.check_before_call(final=True, input_tokens=500)


def test_cost_limit_and_depth_limit_name_themselves() -> None:
    prices = Pricing(overrides={"m": (Decimal(10_000), Decimal(10_000))})
    budget = Budget(Limits(max_cost_usd=Decimal("0.01"), max_depth=1), prices=prices)
    budget.check_before_call()
    budget.book(CallUsage("m", answer=TokenUsage(1, 1)))
    assert budget.usage.cost_usd == Decimal("0.02")
    with pytest.raises(CostLimitExceeded) as info:
        budget.check_before_call()
    assert info.value.limit == "max_cost_usd"
    with pytest.raises(DepthLimitExceeded):
        budget.check_depth(2)


def test_attempts_of_answered_and_unanswered_calls_are_counted_but_only_answers_are_calls() -> None:
    prices = Pricing(overrides={"m": (Decimal(62_500), Decimal(62_500))})
    budget = Budget(Limits(max_llm_calls=2), prices=prices)
    budget.check_before_call()
    retried = (Attempt("m", "failed", kind="timeout"), Attempt("m", "failed"), Attempt("m", "ok"))
    budget.book(CallUsage("m", answer=TokenUsage(0, 0), attempts=retried))
    budget.check_before_call()
    billed = TokenUsage(7, 1)
    budget.book(
        CallUsage("m", attempts=(Attempt("m", "failed", usage=billed), Attempt("m", "cancelled")))
    )

    m = budget.usage.models["m"]
    assert (m.calls, m.attempts, m.failed_attempts, m.cancelled_attempts) == (1, 5, 4, 1)
    assert (m.input_tokens, m.output_tokens, m.cost_usd) == (7, 1, Decimal("0.5"))
    budget.check_before_call()
    usage = budget.usage.as_dict()
    assert (usage["calls"], usage["attempts"], usage["failed_attempts"]) == (1, 5, 4)
    assert usage["cancelled_attempts"] == 1
    assert usage["by_model"]["m"]["attempts"] == 5
    assert budget.snapshot()["attempts"] == 5


def test_a_call_that_never_reached_a_provider_books_nothing_and_frees_its_slot() -> None:
    budget = Budget(Limits(max_llm_calls=1))
    budget.check_before_call()
    budget.book(CallUsage("m"))
    assert budget.usage.models == {}
    budget.check_before_call()


def test_a_call_answered_by_a_backend_that_reports_no_attempts_counts_the_completions() -> None:
    budget = Budget(Limits())
    budget.check_before_call()
    budget.book(CallUsage("m", answer=TokenUsage(3, 2, estimated=True), reported_attempts=3))
    m = budget.usage.models["m"]
    assert (m.calls, m.attempts, m.failed_attempts, m.cancelled_attempts) == (1, 3, 2, 0)
    assert (m.input_tokens, m.output_tokens, m.estimated) == (3, 2, True)


def test_unpriced_models_are_listed_and_flagged_on_every_row() -> None:
    budget = Budget(Limits(), prices=Pricing(overrides={"priced": (Decimal(1), Decimal(1))}))
    budget.check_before_call()
    budget.book(CallUsage("priced", answer=TokenUsage(1, 1)))
    budget.book(CallUsage("local", attempts=(Attempt("local", "failed"),)))
    budget.book_cache_hit("local-alias")

    usage = budget.usage.as_dict()
    assert usage["unpriced_models"] == ["local", "local-alias"]
    assert usage["by_model"]["priced"]["priced"] is True
    assert usage["by_model"]["local"]["priced"] is False
    assert usage["by_model"]["local-alias"]["priced"] is False
