"""What model calls cost, for the ``max_cost_usd`` guardrail and reports.

Prices are USD per million tokens, ``(input, output)``, as :class:`Decimal`
so that summing thousands of small calls does not drift.

The defaults are list prices for standard (non-batch, non-cached, short
context) requests, **taken on 2025-11-15** from the providers' public pricing
pages (OpenAI, Anthropic, Google, DeepSeek, Alibaba via OpenRouter).  Prices
change; they are a best effort, not a bill.  Users should override them with
``prices_usd_per_mtok`` in the config file (see
:attr:`rlm_mcp.config.Settings.prices_usd_per_mtok`), which takes precedence.

Unknown models (local models in particular) cost 0 with ``known=False`` so
callers can say "cost unknown" instead of pretending a run was free.

Lookup is forgiving about how a model is spelled:

* provider prefixes are dropped: ``openai/gpt-4o-mini`` (OpenRouter),
  ``Qwen/Qwen3-Coder-480B-A35B-Instruct``;
* OpenRouter variants are dropped: ``:beta``, ``:nitro``... and ``:free``
  costs 0;
* date and alias suffixes are dropped: ``gpt-4o-2024-08-06``,
  ``claude-sonnet-4-20250514``, ``claude-sonnet-4@20250514``, ``-latest``;
* Anthropic's ``claude-sonnet-4-5`` and ``claude-sonnet-4.5`` are the same;
* otherwise the longest table entry that is a ``-``-separated prefix wins,
  so ``gpt-4.1-mini-xyz`` is priced as ``gpt-4.1-mini``, not ``gpt-4.1``.

Other ``:tag`` suffixes (Ollama's ``qwen3-coder:30b``) are *not* stripped:
those are local models and stay unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from rlm_mcp.backends.base import TokenUsage

__all__ = [
    "DEFAULT_PRICES_USD_PER_MTOK",
    "PRICES_TAKEN_ON",
    "ModelPrice",
    "Pricing",
    "normalize_model_name",
]

PRICES_TAKEN_ON = "2025-11-15"

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


def _p(input_usd: str, output_usd: str) -> tuple[Decimal, Decimal]:
    return Decimal(input_usd), Decimal(output_usd)


DEFAULT_PRICES_USD_PER_MTOK: Mapping[str, tuple[Decimal, Decimal]] = {
    # OpenAI
    "gpt-4o": _p("2.50", "10.00"),
    "gpt-4o-mini": _p("0.15", "0.60"),
    "gpt-4.1": _p("2.00", "8.00"),
    "gpt-4.1-mini": _p("0.40", "1.60"),
    "gpt-4.1-nano": _p("0.10", "0.40"),
    "gpt-5": _p("1.25", "10.00"),
    "gpt-5-mini": _p("0.25", "2.00"),
    "gpt-5-nano": _p("0.05", "0.40"),
    "gpt-5.1": _p("1.25", "10.00"),
    "o1": _p("15.00", "60.00"),
    "o3": _p("2.00", "8.00"),
    "o3-pro": _p("20.00", "80.00"),
    "o3-mini": _p("1.10", "4.40"),
    "o4-mini": _p("1.10", "4.40"),
    # Anthropic
    "claude-sonnet-4": _p("3.00", "15.00"),
    "claude-sonnet-4.5": _p("3.00", "15.00"),
    "claude-3.7-sonnet": _p("3.00", "15.00"),
    "claude-haiku-4.5": _p("1.00", "5.00"),
    "claude-3.5-haiku": _p("0.80", "4.00"),
    "claude-opus-4": _p("15.00", "75.00"),
    "claude-opus-4.1": _p("15.00", "75.00"),
    "claude-opus-4.5": _p("5.00", "25.00"),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": _p("1.25", "10.00"),
    "gemini-2.5-flash": _p("0.30", "2.50"),
    "gemini-2.5-flash-lite": _p("0.10", "0.40"),
    "gemini-2.0-flash": _p("0.10", "0.40"),
    # DeepSeek (cache-miss input)
    "deepseek-chat": _p("0.28", "0.42"),
    "deepseek-reasoner": _p("0.28", "0.42"),
    # Qwen coder models, hosted
    "qwen3-coder": _p("0.22", "0.95"),
    "qwen3-coder-plus": _p("1.00", "5.00"),
    "qwen3-coder-flash": _p("0.30", "1.50"),
}

_OPENROUTER_VARIANT = re.compile(r":(?:free|beta|nitro|floor|online|thinking|extended|exacto)$")
_DATE_SUFFIXES = (
    re.compile(r"@\d{8}$"),  # Vertex AI: claude-sonnet-4@20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic: claude-sonnet-4-20250514
    re.compile(r"-\d{4}$"),  # OpenAI: gpt-4-0613, o1-preview-0912
    re.compile(r"-(?:preview-)?\d{2}-\d{2}$"),  # Google: gemini-2.5-pro-preview-05-06
    re.compile(r"-latest$"),
)
_CLAUDE_VERSION = re.compile(r"(?<=-)(\d)-(\d)(?=-|$)")


def normalize_model_name(model: str) -> str:
    """The table key a model name maps to (before prefix matching)."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]
    name = _OPENROUTER_VARIANT.sub("", name)
    changed = True
    while changed:
        changed = False
        for pattern in _DATE_SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
    if name.startswith("claude-"):
        name = _CLAUDE_VERSION.sub(r"\1.\2", name)
    return name


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens for one model.

    Attributes:
        key: the table entry that matched (``""`` when none did).
        known: ``False`` when the model is not in the table; prices are then 0.
    """

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    key: str = ""
    known: bool = True

    def cost(self, usage: TokenUsage) -> Decimal:
        """Exact USD cost of ``usage`` at this price."""
        return (
            Decimal(usage.input_tokens) * self.input_per_mtok
            + Decimal(usage.output_tokens) * self.output_per_mtok
        ) / _MILLION


class Pricing:
    """A price table: defaults, overridden by the user's config.

    Args:
        overrides: ``{model: (input_usd_per_mtok, output_usd_per_mtok)}``;
            keys are spelled any way lookup accepts and win over defaults.
        defaults: the base table; pass ``{}`` to price only what you list.
    """

    def __init__(
        self,
        overrides: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        *,
        defaults: Mapping[str, tuple[Decimal, Decimal]] = DEFAULT_PRICES_USD_PER_MTOK,
    ) -> None:
        table: dict[str, tuple[Decimal, Decimal]] = {}
        for source in (defaults, overrides or {}):
            for name, (input_usd, output_usd) in source.items():
                key = normalize_model_name(name)
                if not key:
                    raise ValueError(f"empty model name in price table: {name!r}")
                table[key] = (_decimal(input_usd, name), _decimal(output_usd, name))
        self._table = table

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model).known

    def lookup(self, model: str) -> ModelPrice:
        """The price for ``model``; ``known=False`` and zero prices if none fits."""
        is_free = model.strip().lower().endswith(":free")
        key = normalize_model_name(model)
        match = self._match(key)
        if is_free:
            return ModelPrice(_ZERO, _ZERO, key=match or key, known=True)
        if match is None:
            return ModelPrice(_ZERO, _ZERO, key="", known=False)
        input_usd, output_usd = self._table[match]
        return ModelPrice(input_usd, output_usd, key=match, known=True)

    def cost(self, model: str, usage: TokenUsage) -> Decimal:
        """USD cost of one call; ``Decimal(0)`` for unknown models."""
        return self.lookup(model).cost(usage)

    def is_priced(self, model: str) -> bool:
        """Whether ``model`` has a price; an unpriced model's spend escapes ``max_cost_usd``."""
        return self.lookup(model).known

    def _match(self, key: str) -> str | None:
        if key in self._table:
            return key
        best: str | None = None
        for candidate in self._table:
            if key.startswith(candidate + "-") and (best is None or len(candidate) > len(best)):
                best = candidate
        return best


def _decimal(value: object, name: str) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))
    else:
        raise TypeError(f"price for {name!r} must be a Decimal, not {type(value).__name__}")
    if not result.is_finite() or result < 0:
        raise ValueError(f"price for {name!r} must be a finite non-negative number: {value}")
    return result
