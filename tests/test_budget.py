from __future__ import annotations

from decimal import Decimal

import pytest

from rlm_mcp.budget import Budget, Limits
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
    budget.record("m", input_tokens=900, output_tokens=0, cost=Decimal(0))
    budget.check_before_call(final=True, input_tokens=150)
    with pytest.raises(TokenLimitExceeded):
        budget.check_before_call(final=True, input_tokens=500)


def test_cost_limit_and_depth_limit_name_themselves() -> None:
    budget = Budget(Limits(max_cost_usd=Decimal("0.01"), max_depth=1))
    budget.check_before_call()
    budget.record("m", input_tokens=1, output_tokens=1, cost=Decimal("0.02"))
    with pytest.raises(CostLimitExceeded) as info:
        budget.check_before_call()
    assert info.value.limit == "max_cost_usd"
    with pytest.raises(DepthLimitExceeded):
        budget.check_depth(2)
