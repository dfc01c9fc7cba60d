"""Value types and the protocol every LLM backend implements.

The engine talks to models only through :class:`LLMBackend`, so the real
HTTP client, the in-process :class:`~rlm_mcp.testing.ScriptedBackend`
and anything a user plugs in are interchangeable.  The types are frozen so a
request can be recorded, replayed and shared between tasks without copying.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "Attempt",
    "AttemptListener",
    "AttemptOutcome",
    "Completion",
    "CompletionRequest",
    "LLMBackend",
    "Message",
    "Role",
    "TokenUsage",
    "estimate_tokens",
]

Role = Literal["system", "user", "assistant"]
AttemptOutcome = Literal["ok", "failed", "cancelled"]

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What to ask a model.

    Attributes:
        messages: the conversation, oldest first.
        model: ``None`` uses the backend's default model.
        max_tokens: ``None`` uses the backend's default (or the provider's).
        temperature: ``None`` leaves it to the backend or provider.
        seed: asks the provider for reproducible sampling where it supports it.
        stop: stop sequences; empty sends none.
        on_attempt: told about every attempt the backend makes for this
            request, failed and cancelled ones included, so spend on retries
            is visible to whoever pays for it. Not part of the request's
            identity (ignored by ``==`` and ``repr``).
    """

    messages: tuple[Message, ...]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    on_attempt: AttemptListener | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens billed for one call.

    Attributes:
        estimated: the provider did not report usage, so the counts come from
            :func:`estimate_tokens`; budgets treat them as approximate.
    """

    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request a backend sent to a provider, reported when it ends.

    A call may take several attempts (retries), and a provider may bill an
    attempt that failed; callers that account for spend count these rather
    than calls.

    Attributes:
        model: the model asked; for an ``ok`` attempt, the model that answered.
        outcome: ``ok`` (a usable completion); ``failed`` (an error status, a
            timeout, a lost connection, an unusable body); ``cancelled`` (the
            caller stopped waiting while the request was on the wire).
        kind: for a failure, how it failed, as in
            :attr:`~rlm_mcp.errors.BackendError.kind` (``rate_limited``, ...).
        usage: tokens the provider reported for a failed attempt (a 200 whose
            body was unusable); ``None`` when it reported none. An ``ok``
            attempt's usage is on its :class:`Completion`.
        retry_after: the wait the provider asked for, when it asked.
    """

    model: str
    outcome: AttemptOutcome
    kind: str | None = None
    usage: TokenUsage | None = None
    retry_after: float | None = None


AttemptListener = Callable[[Attempt], None]
"""Called once per attempt, on the caller's event loop, as the attempt ends."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer.

    Attributes:
        model: the model that answered, as the provider reported it (may carry
            a date suffix, which :mod:`~rlm_mcp.backends.pricing` strips).
        latency_seconds: wall time of the whole call, retries and back-off
            included, because that is what the caller waited.
        attempts: HTTP attempts made, 1 when the first one succeeded.
    """

    text: str
    model: str
    usage: TokenUsage
    finish_reason: str | None = None
    latency_seconds: float = 0.0
    attempts: int = 1


@runtime_checkable
class LLMBackend(Protocol):
    """Anything that can answer a :class:`CompletionRequest`.

    Implementations raise only :class:`~rlm_mcp.errors.BackendError`
    subclasses (besides cancellation), after doing their own retries, and
    report each attempt to ``request.on_attempt`` when it is set (a backend
    that does not is accounted from :attr:`Completion.attempts`).
    """

    model: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """Rough token count (about four characters per token).

    Used only when a provider omits usage; good enough for budgets, not for
    billing.  Non-empty text counts at least one token.
    """
    if not text:
        return 0
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))
