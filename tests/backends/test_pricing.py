"""Pricing: lookups, name normalisation, overrides and Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rlm_mcp.backends import PRICES_TAKEN_ON, Pricing, TokenUsage
from rlm_mcp.backends.pricing import DEFAULT_PRICES_USD_PER_MTOK, normalize_model_name

D = Decimal


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4.1-Mini", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-pro", "o3-pro"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4.5"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-haiku-4-5", "claude-haiku-4.5"),
        ("claude-opus-4-1-20250805", "claude-opus-4.1"),
        ("claude-3-7-sonnet-latest", "claude-3.7-sonnet"),
        ("google/gemini-2.5-pro-preview-05-06", "gemini-2.5-pro"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "qwen3-coder"),
        ("qwen/qwen3-coder-plus", "qwen3-coder-plus"),
    ],
)
def test_known_models_are_found_however_they_are_spelled(model: str, key: str) -> None:
    price = Pricing().lookup(model)

    assert price.known
    assert price.key == key


@pytest.mark.parametrize(
    "model", ["llama3.1:8b", "qwen3-coder:30b", "my-finetune", "gpt-4", "local/whatever"]
)
def test_unknown_and_local_models_cost_zero_and_say_so(model: str) -> None:
    pricing = Pricing()
    price = pricing.lookup(model)

    assert not price.known
    assert price.input_per_mtok == price.output_per_mtok == D(0)
    assert pricing.cost(model, TokenUsage(1_000_000, 1_000_000)) == D(0)
    assert model not in pricing


def test_openrouter_free_variants_cost_nothing_but_are_known() -> None:
    price = Pricing().lookup("deepseek/deepseek-chat:free")

    assert price.known
    assert price.cost(TokenUsage(10**6, 10**6)) == D(0)


def test_the_longest_matching_prefix_wins() -> None:
    pricing = Pricing()

    assert pricing.lookup("gpt-4.1-mini-experimental").key == "gpt-4.1-mini"
    assert pricing.lookup("gpt-4o-search-preview").key == "gpt-4o"
    assert pricing.lookup("gpt-4omni").known is False


def test_cost_is_exact_decimal_arithmetic() -> None:
    pricing = Pricing()

    cost = pricing.cost("gpt-4o-mini", TokenUsage(input_tokens=1234, output_tokens=567))

    assert cost == D("0.00052530")
    assert isinstance(cost, Decimal)
    total = sum((pricing.cost("gpt-4o-mini", TokenUsage(1, 1)) for _ in range(10_000)), D(0))
    assert total == D("0.0075")


def test_overrides_win_over_defaults_and_add_new_models() -> None:
    pricing = Pricing({"openai/gpt-4o": (D("1"), D("2")), "my-local": (D("0.01"), D("0.02"))})

    assert pricing.cost("gpt-4o-2024-08-06", TokenUsage(10**6, 10**6)) == D("3")
    assert pricing.lookup("gpt-4o-mini").input_per_mtok == D("0.15")
    assert pricing.cost("my-local", TokenUsage(2 * 10**6, 0)) == D("0.02")


def test_empty_defaults_price_only_the_overrides() -> None:
    pricing = Pricing({"x-model": (D(1), D(1))}, defaults={})

    assert "x-model" in pricing
    assert "gpt-4o" not in pricing


@pytest.mark.parametrize("bad", [(D(-1), D(1)), (D("NaN"), D(1))])
def test_negative_or_non_finite_prices_are_rejected(bad: tuple[Decimal, Decimal]) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Pricing({"m": bad})


def test_the_defaults_are_dated_and_cover_the_common_models() -> None:
    assert PRICES_TAKEN_ON.count("-") == 2
    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o3",
        "o4-mini",
        "claude-sonnet-4",
        "claude-sonnet-4.5",
        "claude-haiku-4.5",
        "claude-opus-4.1",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "deepseek-chat",
        "qwen3-coder",
    ]:
        assert model in DEFAULT_PRICES_USD_PER_MTOK
        assert all(isinstance(p, Decimal) for p in DEFAULT_PRICES_USD_PER_MTOK[model])


def test_normalisation_keeps_local_tags_and_strips_routing_variants() -> None:
    assert normalize_model_name("qwen3-coder:30b") == "qwen3-coder:30b"
    assert normalize_model_name("openai/gpt-4o:nitro") == "gpt-4o"
