"""Guardrails: limits as a value object, usage tallies, and the check before each call.

One :class:`Budget` is shared by a whole recursion tree: the root loop, every
``llm_query`` and every nested ``rlm_query`` spend from it, and every spend is
checked *before* the request is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from rlm_mcp.errors import (
    BudgetExceeded,
    CallLimitExceeded,
    ConfigError,
    CostLimitExceeded,
    DepthLimitExceeded,
    IterationLimitExceeded,
    TimeLimitExceeded,
    TokenLimitExceeded,
)

__all__ = ["Budget", "Limits", "ModelUsage", "Usage"]

_INT_LIMITS = ("max_depth", "max_iterations", "max_llm_calls", "max_tokens", "max_concurrency")
_FLOAT_LIMITS = ("max_wall_seconds", "exec_timeout_seconds")


@dataclass(frozen=True, slots=True)
class Limits:
    """Guardrails for one query, over its whole recursion tree.

    Attributes:
        max_depth: how deep ``rlm_query`` may nest (0 forbids it).
        max_iterations: root turns (model replies) per RLM level.
        max_llm_calls: LLM requests in total, root and sub-calls, all depths.
        max_tokens: input plus output tokens in total.
        max_cost_usd: spend in total, priced from the pricing table.
        max_wall_seconds: wall-clock time for the whole query.
        exec_timeout_seconds: per code execution in the sandbox.
        max_concurrency: sub-calls in flight at once.
    """

    max_depth: int = 1
    max_iterations: int = 16
    max_llm_calls: int = 64
    max_tokens: int = 1_000_000
    max_cost_usd: Decimal = Decimal("1.00")
    max_wall_seconds: float = 600.0
    exec_timeout_seconds: float = 30.0
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        for name in _INT_LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            if value < 0 or (value == 0 and name != "max_depth"):
                raise ConfigError(f"{name} must be positive, got {value}")
        for name in _FLOAT_LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.max_cost_usd, Decimal) or self.max_cost_usd < 0:
            raise ConfigError(
                f"max_cost_usd must be a non-negative amount, got {self.max_cost_usd!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: Limits | None = None) -> Limits:
        """Build limits from loose input (config files, tool arguments), validating types."""
        base = base or cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown limit(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name == "max_cost_usd":
                if isinstance(value, bool):
                    raise ConfigError(f"max_cost_usd must be a number, got {value!r}")
                try:
                    changes[name] = Decimal(str(value))
                except InvalidOperation:
                    raise ConfigError(f"max_cost_usd must be a number, got {value!r}") from None
            elif name in _FLOAT_LIMITS:
                if isinstance(value, str):
                    try:
                        value = float(value)
                    except ValueError:
                        raise ConfigError(f"{name} must be a number, got {value!r}") from None
                changes[name] = value
            else:
                if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                    value = int(value)
                changes[name] = value
        return replace(base, **changes)

    def tighten(self, override: Limits | Mapping[str, Any] | None) -> Limits:
        """Return limits no looser than ``self``: each field is the minimum of the two.

        Per-query limits may only tighten the server's limits, never loosen them.
        """
        if override is None:
            return self
        other = override if isinstance(override, Limits) else Limits.from_mapping(override, self)
        return Limits(
            **{f.name: min(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: (str(v) if isinstance(v := getattr(self, f.name), Decimal) else v)
            for f in fields(self)
        }


@dataclass(slots=True)
class ModelUsage:
    """Spend on one model: requests, tokens, money, and memo-cache hits."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cache_hits: int = 0
    estimated: bool = False
    priced: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "cache_hits": self.cache_hits,
            "tokens_estimated": self.estimated,
            "priced": self.priced,
        }


@dataclass(slots=True)
class Usage:
    """Totals over a query, per model."""

    models: dict[str, ModelUsage] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.models.values())

    @property
    def tokens(self) -> int:
        return sum(m.input_tokens + m.output_tokens for m in self.models.values())

    @property
    def input_tokens(self) -> int:
        return sum(m.input_tokens for m in self.models.values())

    @property
    def output_tokens(self) -> int:
        return sum(m.output_tokens for m in self.models.values())

    @property
    def cost_usd(self) -> Decimal:
        return sum((m.cost_usd for m in self.models.values()), Decimal(0))

    @property
    def cache_hits(self) -> int:
        return sum(m.cache_hits for m in self.models.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "cache_hits": self.cache_hits,
            "by_model": {name: m.as_dict() for name, m in sorted(self.models.items())},
        }


class Budget:
    """The tree-wide spending account for one query; thread-safe.

    The final-answer allowance: once a limit stops the loop, the engine may
    make exactly one more root call to ask for the best answer so far. That
    call is allowed past the call, iteration and time limits, and up to 10%
    past the token and cost limits, so the user gets an answer rather than
    nothing.
    """

    FINAL_ALLOWANCE = Decimal("0.10")

    def __init__(self, limits: Limits, *, clock: Any = time.monotonic) -> None:
        self.limits = limits
        self.usage = Usage()
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.stopped_by: BudgetExceeded | None = None

    @property
    def elapsed(self) -> float:
        return float(self._clock() - self._started)

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self.limits.max_wall_seconds - self.elapsed)

    def check_depth(self, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise DepthLimitExceeded(
                f"rlm_query would start depth {depth}, beyond max_depth={self.limits.max_depth}; "
                "use llm_query for a plain sub-call"
            )

    def check_iteration(self, iteration: int) -> None:
        if iteration > self.limits.max_iterations:
            raise IterationLimitExceeded(
                f"turn {iteration} would exceed max_iterations={self.limits.max_iterations}"
            )

    def check_before_call(
        self, *, count: int = 1, input_tokens: int = 0, final: bool = False
    ) -> None:
        """Raise if ``count`` more calls with about ``input_tokens`` each would cross a limit.

        Calls that passed the check but have not finished are counted as
        spent, so concurrent sub-calls cannot all slip under the limit.
        """
        with self._lock:
            self._check_locked(count=count, input_tokens=input_tokens, final=final)
            self._in_flight += count

    def _check_locked(self, *, count: int, input_tokens: int, final: bool) -> None:
        lim = self.limits
        what = "the next call" if count == 1 else f"the next {count} calls"
        if not final:
            if self.elapsed >= lim.max_wall_seconds:
                raise TimeLimitExceeded(
                    f"{what} would run past max_wall_seconds={lim.max_wall_seconds:g} "
                    f"({self.elapsed:.1f}s elapsed)"
                )
            used = self.usage.calls + self._in_flight
            if used + count > lim.max_llm_calls:
                raise CallLimitExceeded(
                    f"{what} would exceed max_llm_calls={lim.max_llm_calls} ({used} used)"
                )
        token_cap = lim.max_tokens * (1 + self.FINAL_ALLOWANCE) if final else lim.max_tokens
        tokens = self.usage.tokens
        if tokens + count * input_tokens > token_cap:
            raise TokenLimitExceeded(
                f"{what} (~{count * input_tokens} input tokens) would exceed "
                f"max_tokens={lim.max_tokens} ({tokens} used)"
            )
        cost_cap = lim.max_cost_usd * (1 + self.FINAL_ALLOWANCE) if final else lim.max_cost_usd
        if self.usage.cost_usd >= cost_cap:
            raise CostLimitExceeded(
                f"{what} would exceed max_cost_usd={lim.max_cost_usd} "
                f"(${self.usage.cost_usd} spent)"
            )

    def release(self, count: int = 1) -> None:
        """Undo a passed check for calls that were never sent or failed before spending."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - count)

    def record(
        self,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost: Decimal,
        estimated: bool = False,
        priced: bool = True,
    ) -> None:
        """Book a finished call (which passed :meth:`check_before_call`)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            m = self.usage.models.setdefault(model, ModelUsage())
            m.calls += 1
            m.input_tokens += input_tokens
            m.output_tokens += output_tokens
            m.cost_usd += cost
            m.estimated = m.estimated or estimated
            m.priced = m.priced and priced

    def record_cache_hit(self, model: str) -> None:
        with self._lock:
            self.usage.models.setdefault(model, ModelUsage()).cache_hits += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.usage.calls,
                "tokens": self.usage.tokens,
                "cost_usd": str(self.usage.cost_usd),
                "elapsed_seconds": round(self.elapsed, 3),
            }
