"""One error tree for rlm-mcp.

Every error the package raises on purpose derives from :class:`RlmMcpError`::

    RlmMcpError
    ├── ConfigError                 bad or missing settings
    ├── IndexingError               a repository could not be loaded or searched
    │   ├── RepositoryNotFound      the path does not exist / is not readable
    │   ├── PathNotAllowed          the path escapes the allowed roots
    │   ├── IndexCorrupted          the index cache is unusable (corrupt, unreadable) and cannot be rebuilt
    │   ├── IndexUnavailable        the index database cannot be reached
    │   └── SearchError             a bad pattern, glob or path in a search call
    ├── UnknownRepository           no loaded repository has that name
    ├── SessionNotFound             a session handle is unknown, expired or evicted
    ├── SandboxUnavailable          model code cannot be run safely here
    ├── BackendError                an LLM provider failed (after retries); ``kind`` names how
    │   ├── BackendNotConfigured    no endpoint/model configured
    │   ├── BackendUnreachable      connection refused, DNS failure: no request got through
    │   ├── BackendConnectionLost   the connection dropped after the request was sent
    │   ├── BackendTimeout          the provider did not answer in time
    │   └── BackendResponseError    the provider answered with an error or garbage
    │       ├── BackendRateLimited  HTTP 429 persisted through the retries
    │       └── BackendAuthError    HTTP 401/403: the key is missing, wrong or not allowed
    └── BudgetExceeded              a guardrail would be crossed by the next call
        ├── DepthLimitExceeded
        ├── IterationLimitExceeded
        ├── CallLimitExceeded
        ├── TokenLimitExceeded
        ├── CostLimitExceeded
        ├── TimeLimitExceeded
        │   └── TimeLimitWhileRateLimited   the time ran out waiting on a 429's Retry-After
        ├── LoopDetected            the model repeats itself
        └── SpendingStopped         sub-calls while the final answer is being written

Errors raised by model code inside the REPL are output for the model, not
exceptions for the server; they never appear in this tree.
"""

from __future__ import annotations

__all__ = [
    "BackendAuthError",
    "BackendConnectionLost",
    "BackendError",
    "BackendNotConfigured",
    "BackendRateLimited",
    "BackendResponseError",
    "BackendTimeout",
    "BackendUnreachable",
    "BudgetExceeded",
    "CallLimitExceeded",
    "ConfigError",
    "CostLimitExceeded",
    "DepthLimitExceeded",
    "IndexCorrupted",
    "IndexUnavailable",
    "IndexingError",
    "IterationLimitExceeded",
    "LoadInterrupted",
    "LoopDetected",
    "PathNotAllowed",
    "RepositoryNotFound",
    "RlmMcpError",
    "SandboxUnavailable",
    "SearchError",
    "SessionNotFound",
    "SpendingStopped",
    "StillLoading",
    "TimeLimitExceeded",
    "TimeLimitWhileRateLimited",
    "TokenLimitExceeded",
    "UnknownRepository",
    "error_kind",
]


class RlmMcpError(Exception):
    """Root of every error rlm-mcp raises on purpose."""


class ConfigError(RlmMcpError):
    """A setting is missing, malformed or contradictory."""


class IndexingError(RlmMcpError):
    """A repository could not be loaded, indexed or searched."""


class RepositoryNotFound(IndexingError):
    """The path to load does not exist or cannot be read."""


class IndexCorrupted(IndexingError):
    """The index cache is unusable (corrupt, unreadable, not a database) and could not be
    rebuilt or opened; the message names the file."""


class LoadInterrupted(IndexingError):
    """The load was stopped (Ctrl-C, the client went away); what it stored is kept and the
    next load resumes from it."""


class PathNotAllowed(IndexingError):
    """The path resolves outside the roots the server may load from."""


class IndexUnavailable(IndexingError):
    """The shared index database (PostgreSQL) cannot be reached; the message names it
    (without its password) and says why."""


class SearchError(IndexingError):
    """A search call got a bad argument: an invalid regex, an unknown path."""


class UnknownRepository(RlmMcpError):
    """No loaded repository has the requested name."""


class StillLoading(RlmMcpError):
    """The repository is still being loaded in the background (``rlm_load`` returned early)."""


class SessionNotFound(RlmMcpError):
    """A session handle that names no live session: never issued, expired or evicted.

    Attributes:
        kind: ``session_expired`` (it lived and ended: idle too long, evicted,
            closed) or ``unknown_session`` (this server never issued it).
    """

    kind: str = "unknown_session"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class SandboxUnavailable(RlmMcpError):
    """The sandbox cannot isolate model code here and unsafe mode is off."""


class BackendError(RlmMcpError):
    """An LLM provider call failed for good (retries exhausted or not retryable).

    Attributes:
        kind: how it failed, one word a result or a client can branch on
            (``unreachable``, ``connection_lost``, ``timeout``, ``rate_limited``,
            ``auth``, ``bad_response``, ``not_configured``; ``backend`` otherwise).
    """

    kind: str = "backend"


class BackendNotConfigured(BackendError):
    """No LLM endpoint or model is configured."""

    kind = "not_configured"


class BackendUnreachable(BackendError):
    """No connection could be made: refused, unknown host, connect timeout."""

    kind = "unreachable"


class BackendConnectionLost(BackendError):
    """The connection dropped after the request was sent: no answer, or a body cut short."""

    kind = "connection_lost"


class BackendTimeout(BackendError):
    """The provider did not answer within the request timeout."""

    kind = "timeout"


class BackendResponseError(BackendError):
    """The provider answered with an error status or an unusable body."""

    kind = "bad_response"


class BackendRateLimited(BackendResponseError):
    """The provider kept answering HTTP 429 (rate limit or quota) through every retry."""

    kind = "rate_limited"


class BackendAuthError(BackendResponseError):
    """HTTP 401 or 403: the API key is missing, wrong, or not allowed this model."""

    kind = "auth"


class BudgetExceeded(RlmMcpError):
    """The next call would cross a guardrail.

    Attributes:
        limit: the name of the limit (``max_llm_calls``, ``max_cost_usd``, ...).
    """

    limit: str = "budget"

    def __init__(self, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        if limit is not None:
            self.limit = limit


class DepthLimitExceeded(BudgetExceeded):
    limit = "max_depth"


class IterationLimitExceeded(BudgetExceeded):
    limit = "max_iterations"


class CallLimitExceeded(BudgetExceeded):
    limit = "max_llm_calls"


class TokenLimitExceeded(BudgetExceeded):
    limit = "max_tokens"


class CostLimitExceeded(BudgetExceeded):
    limit = "max_cost_usd"


class TimeLimitExceeded(BudgetExceeded):
    limit = "max_wall_seconds"


class TimeLimitWhileRateLimited(TimeLimitExceeded):
    """``max_wall_seconds`` ran out while a call waited on a rate-limited provider (HTTP 429).

    The limit is still the wall clock, but the cause is the provider: ``kind``
    says so, the way :attr:`BackendError.kind` does for a failed call.
    """

    kind = "rate_limited"


class LoopDetected(BudgetExceeded):
    limit = "loop_detected"


class SpendingStopped(BudgetExceeded):
    """Sub-calls are off while the root writes its final answer after a limit."""

    limit = "final_answer"

    def __init__(
        self,
        message: str = "no more sub-calls: the budget is spent; answer from what you have",
        *,
        limit: str | None = None,
    ) -> None:
        super().__init__(message, limit=limit)


_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (RepositoryNotFound, "not_found"),
    (PathNotAllowed, "path_not_allowed"),
    (IndexCorrupted, "index_corrupted"),
    (LoadInterrupted, "interrupted"),
    (IndexUnavailable, "index_unavailable"),
    (SearchError, "bad_pattern"),
    (IndexingError, "indexing_failed"),
    (UnknownRepository, "unknown_repository"),
    (StillLoading, "loading"),
    (SandboxUnavailable, "sandbox_unavailable"),
    (ConfigError, "bad_request"),
    (BudgetExceeded, "limit_reached"),
)


def error_kind(exc: BaseException) -> str:
    """One machine-readable word for why a call failed, for clients to branch on.

    A provider failure gives its :attr:`BackendError.kind` (``timeout``,
    ``rate_limited``, ``auth``...), a session error its
    :attr:`SessionNotFound.kind`; the rest one word per class of this tree
    (``not_found``, ``path_not_allowed``, ``bad_pattern``, ``limit_reached``...);
    ``ValueError``/``TypeError`` from a tool's arguments are ``bad_request``.
    """
    if isinstance(exc, BackendError | SessionNotFound):
        return exc.kind
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, ValueError | TypeError):
        return "bad_request"
    return "internal"
