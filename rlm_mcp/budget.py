"""Guardrails: limits as a value object, usage tallies, and the check before each call.

One :class:`Budget` is shared by a whole recursion tree: the root loop, every
``llm_query`` and every nested ``rlm_query`` spend from it, and every spend is
checked *before* the request is sent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from rlm_mcp.backends.base import Attempt, TokenUsage
from rlm_mcp.errors import (
    CallLimitExceeded,
    ConfigError,
    CostLimitExceeded,
    DepthLimitExceeded,
    IterationLimitExceeded,
    TimeLimitExceeded,
    TokenLimitExceeded,
)

__all__ = ["LIMIT_FIELDS", "Budget", "CallUsage", "Limits", "ModelUsage", "PriceTable", "Usage"]


def _limit(default: Any, help: str, *, minimum: int = 1) -> Any:
    """A limit field: its default and help live here, and nowhere else.

    ``minimum`` is the smallest allowed value (0 or 1); floats must be > 0.
    The settings loader, the MCP schema of ``rlm_query``'s ``limits``, the
    CLI flags and ``docs/configuration.md`` are all generated from these.
    """
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True, slots=True)
class Limits:
    """Guardrails for one query, over its whole recursion tree.

    Each field's help text is in its metadata (see :data:`LIMIT_FIELDS`).
    """

    max_depth: int = _limit(1, "How deep `rlm_query` may nest (0 forbids it).", minimum=0)
    max_iterations: int = _limit(16, "Root turns (model replies) per RLM level.")
    max_llm_calls: int = _limit(64, "LLM requests per query, root and sub-calls, all depths.")
    max_tokens: int = _limit(1_000_000, "Input plus output tokens per query.")
    max_cost_usd: Decimal = _limit(  # noqa: RUF009 - Decimal is immutable
        Decimal("1.00"),
        "Spend per query in USD (models without a price count as unpriced).",
        minimum=0,
    )
    max_wall_seconds: float = _limit(600.0, "Wall-clock seconds per query.")
    exec_timeout_seconds: float = _limit(30.0, "Seconds per code execution in the sandbox.")
    max_concurrency: int = _limit(8, "Sub-calls in flight at once.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low = f.metadata["minimum"]
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{f.name} must be an integer, got {value!r}")
                if value < low:
                    raise ConfigError(
                        f"{f.name} must be {'positive' if low else 'zero or more'}, got {value}"
                    )
            elif f.type in ("float", float):
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise ConfigError(
                        f"{f.name} must be a positive number of seconds, got {value!r}"
                    )
            elif not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ConfigError(f"{f.name} must be a non-negative amount, got {value!r}")

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
            elif name in _FLOAT_NAMES:
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


LIMIT_FIELDS = fields(Limits)
"""The one table of guardrails: name, type, default and help (``metadata['help']``)."""
_FLOAT_NAMES = frozenset(f.name for f in LIMIT_FIELDS if f.type in ("float", float))


@dataclass(slots=True)
class ModelUsage:
    """Spend on one model: calls, HTTP attempts, tokens, money, and memo-cache hits.

    Attributes:
        calls: calls that returned a completion (what ``max_llm_calls`` counts).
        attempts: requests sent to the provider, every retry included, and
            those of calls that failed or were cancelled: what the provider saw.
        failed_attempts: attempts that got no usable answer (error status,
            timeout, lost connection, unusable body), cancelled ones included.
        cancelled_attempts: attempts abandoned while on the wire (a sibling in
            a batch failed, the query ended or ran out of time).
        input_tokens / output_tokens / cost_usd: what the provider reported,
            for failed attempts too when it reported any.
        priced: whether the price table knows the model; ``False`` means its
            spend is not in ``cost_usd`` and escapes ``max_cost_usd``.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cache_hits: int = 0
    estimated: bool = False
    priced: bool = True
    attempts: int = 0
    failed_attempts: int = 0
    cancelled_attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "cancelled_attempts": self.cancelled_attempts,
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

    @property
    def attempts(self) -> int:
        return sum(m.attempts for m in self.models.values())

    @property
    def failed_attempts(self) -> int:
        return sum(m.failed_attempts for m in self.models.values())

    @property
    def cancelled_attempts(self) -> int:
        return sum(m.cancelled_attempts for m in self.models.values())

    @property
    def unpriced_models(self) -> list[str]:
        """Models used that have no price: their spend is missing from ``cost_usd``."""
        return sorted(name for name, m in self.models.items() if not m.priced)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "cancelled_attempts": self.cancelled_attempts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "cache_hits": self.cache_hits,
            "unpriced_models": self.unpriced_models,
            "by_model": {name: m.as_dict() for name, m in sorted(self.models.items())},
        }


class PriceTable(Protocol):
    """Prices calls by model: :class:`rlm_mcp.backends.Pricing` is one."""

    def cost(self, model: str, usage: TokenUsage) -> Decimal: ...

    def is_priced(self, model: str) -> bool: ...


class _FreePrices:
    """No prices: every call costs $0 and every model is unpriced."""

    def cost(self, model: str, usage: TokenUsage) -> Decimal:
        return Decimal(0)

    def is_priced(self, model: str) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class CallUsage:
    """What one LLM call spent, as its backend reported it: what :meth:`Budget.book` takes.

    Attributes:
        model: the model that answered, or the one asked when none did.
        answer: the usage of the completion that answered; ``None`` when the
            call failed, was cut off or was cancelled, and then it is no call,
            only attempts.
        attempts: every HTTP attempt the backend reported, retries included.
        reported_attempts: the attempts an answering backend says it made,
            for a backend that reports none one by one.
    """

    model: str
    answer: TokenUsage | None = None
    attempts: tuple[Attempt, ...] = ()
    reported_attempts: int = 1


class Budget:
    """The tree-wide spending account for one query; thread-safe.

    The final-answer allowance: once a limit stops the loop, the engine may
    make exactly one more root call to ask for the best answer so far. That
    call is allowed past the call, iteration and time limits, and up to 10%
    past the token and cost limits, so the user gets an answer rather than
    nothing.
    """

    FINAL_ALLOWANCE = Decimal("0.10")

    def __init__(
        self, limits: Limits, *, prices: PriceTable | None = None, clock: Any = time.monotonic
    ) -> None:
        self.limits = limits
        self.prices: PriceTable = prices or _FreePrices()
        self.usage = Usage()
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._in_flight = 0

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
    ) -> float:
        """Raise if ``count`` more calls with about ``input_tokens`` each would cross a limit.

        Calls that passed the check but have not been booked are counted as
        spent, so concurrent sub-calls cannot all slip under the limit. Returns
        the seconds left before ``max_wall_seconds``: the most a call may wait.
        """
        with self._lock:
            self._check_locked(count=count, input_tokens=input_tokens, final=final)
            self._in_flight += count
        return self.remaining_seconds

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

    def book(self, call: CallUsage) -> None:
        """Book a call that passed :meth:`check_before_call`, however it ended; frees its slot.

        Every attempt counts, and whatever the provider billed for it, so
        retries and failed calls are spend too. Only a call that answered
        counts as a call (what ``max_llm_calls`` limits); its bill is the
        answer's usage plus that of the attempts that failed before it.
        """
        attempts = call.attempts
        if call.answer is None and not attempts:
            self.release()
            return
        failed = [a for a in attempts if a.outcome != "ok"]
        if call.answer is None:
            billed = [a.usage for a in attempts]
            count, failures = len(attempts), len(failed)
            cancelled = sum(1 for a in failed if a.outcome == "cancelled")
        else:
            billed = [call.answer, *(a.usage for a in failed)]
            # A backend that reports no attempts is accounted from the completion.
            count = len(attempts) if attempts else max(1, call.reported_attempts)
            failures, cancelled = (len(failed) if attempts else count - 1), 0
        usage = TokenUsage(
            input_tokens=sum(u.input_tokens for u in billed if u is not None),
            output_tokens=sum(u.output_tokens for u in billed if u is not None),
            estimated=any(u.estimated for u in billed if u is not None),
        )
        cost = self.prices.cost(call.model, usage)
        priced = self.prices.is_priced(call.model)
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            m = self.usage.models.setdefault(call.model, ModelUsage())
            m.calls += int(call.answer is not None)
            m.attempts += count
            m.failed_attempts += failures
            m.cancelled_attempts += cancelled
            m.input_tokens += usage.input_tokens
            m.output_tokens += usage.output_tokens
            m.cost_usd += cost
            m.estimated = m.estimated or usage.estimated
            m.priced = m.priced and priced

    def book_cache_hit(self, model: str) -> None:
        """Book a sub-call answered from the memo: no spend, but the model was used."""
        with self._lock:
            m = self.usage.models.setdefault(model, ModelUsage())
            m.cache_hits += 1
            m.priced = m.priced and self.prices.is_priced(model)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.usage.calls,
                "attempts": self.usage.attempts,
                "tokens": self.usage.tokens,
                "cost_usd": str(self.usage.cost_usd),
                "elapsed_seconds": round(self.elapsed, 3),
            }
