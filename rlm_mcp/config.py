"""Frozen settings objects.

Nothing here reads the environment: :mod:`rlm_mcp.cli` builds these from
flags, environment variables and the config file, and passes them down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "IndexSettings",
    "ModelEndpoint",
    "OutputSettings",
    "SandboxSettings",
    "SessionSettings",
    "Settings",
    "default_cache_dir",
]


DEFAULT_CONTEXT_WINDOW = 128_000
"""Tokens a model accepts when its endpoint does not say."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The XDG cache directory for rlm-mcp: ``$XDG_CACHE_HOME/rlm-mcp``, else ``~/.cache/rlm-mcp``.

    The environment is the caller's to pass (the CLI does); library code that
    passes none gets the XDG default location.
    """
    base = (environ or {}).get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rlm-mcp"


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """How repositories are loaded and indexed.

    Attributes:
        max_file_bytes: files larger than this are skipped as ``too_large``.
        cache_dir: where per-repository SQLite caches live; ``None`` uses
            :func:`default_cache_dir` (``~/.cache/rlm-mcp``; the CLI honours
            ``$XDG_CACHE_HOME``).
        workers: parser processes; 0 means one per core.
        watch: start a watchdog watcher for loaded repositories.
        debounce_seconds: quiet time before a burst of file events is applied.
        follow_symlinks: resolve symlinks to report what they alias (a link is never
            indexed itself: what it points to inside the root is indexed once, under
            its real path; off, links are reported as ``not_regular``).
        grep_timeout_seconds: how long one grep may run before its helper
            process is killed (a catastrophic regex cannot stall the server).
        ranked_search: build the full-text index behind ranked search (names,
            paths, docstrings, comments). Off: a smaller cache and a faster
            cold load, and ranked search matches exact names only.
        index_url: a ``postgresql://`` URL: keep indexes in that shared database
            (many processes read, one writer per repository) instead of a SQLite
            file per repository under ``cache_dir``.
        commit: pin the shared index to this commit (a full hash): the repository's
            identity gets ``@commit``, and a new one starts from the nearest indexed
            commit, so only the files that differ are parsed (``rlm-mcp index
            --commit``, ``rlm-mcp review``). Ignored without ``index_url``.
        commit_overlay: with ``commit``, a new pinned index starts as an overlay on the
            nearest indexed commit (nothing copied: it stores only the files that differ)
            rather than as a full copy; for one-shot jobs such as CI reviews.
        follow_seconds: with ``index_url`` and no watcher (a read replica), how often
            to check whether the writer committed something and, if so, refresh the
            loaded repository from the shared index; 0 never checks.
    """

    max_file_bytes: int = 1024 * 1024
    cache_dir: Path | None = None
    workers: int = 0
    watch: bool = True
    debounce_seconds: float = 0.05
    follow_symlinks: bool = True
    grep_timeout_seconds: float = 10.0
    ranked_search: bool = True
    index_url: str | None = field(default=None, repr=False)
    commit: str | None = None
    commit_overlay: bool = False
    follow_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """Limits for the worker process that runs model-written code.

    The time one execution may take is a guardrail,
    :attr:`rlm_mcp.budget.Limits.exec_timeout_seconds`, so that ``rlm_query``
    and ``rlm_exec`` obey the same value.
    """

    output_limit_chars: int = 20_000
    memory_mb: int | None = None
    cpu_seconds: int = 900
    allow_unsafe: bool = False


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """An OpenAI-compatible endpoint and model.

    Attributes:
        model: the model name sent to the provider.
        base_url: ``None`` uses the OpenAI default.
        api_key: ``None`` sends a placeholder (local servers ignore it).
        timeout_seconds: per-request timeout.
        max_retries: attempts after the first on 429, 5xx and timeouts.
        context_window: tokens the model accepts, used to size prompts.
        max_output_tokens: the most tokens one reply may hold; ``None``: the provider's.
        temperature: sampling temperature sent with every call; ``None``: the provider's.
        seed: sent with every call, for reproducible sampling where the provider has it.
    """

    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = 120.0
    max_retries: int = 3
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_output_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How long and how many sessions (REPL and history kept for follow-ups) live.

    Attributes:
        ttl_seconds: a session unused this long expires (its REPL is stopped).
        max_sessions: the most live sessions; a new one evicts the least
            recently used idle session beyond it (each holds a REPL process).
        max_bytes: the most bytes all sessions' histories and context texts may
            hold together; beyond it the least recently used idle ones go.
    """

    ttl_seconds: float = 1800.0
    max_sessions: int = 32
    max_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """How MCP tool results are sent.

    Attributes:
        max_result_tokens: the most tokens (estimated at four characters each) one tool
            response may carry, every content block and ``structuredContent`` counted;
            list-shaped tools cut their list to fit and return a ``next_cursor``.
        structured_output: ``auto`` sends a text rendering and ``structuredContent``;
            ``on`` adds the JSON as a second text block; ``off`` sends the rendering only
            and publishes no output schemas (for clients that mishandle them).
    """

    max_result_tokens: int = 20_000
    structured_output: str = "auto"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs, built once at start-up."""

    index: IndexSettings = field(default_factory=IndexSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    root_model: ModelEndpoint | None = None
    sub_model: ModelEndpoint | None = None
    allowed_roots: tuple[Path, ...] = ()
    trajectory_dir: Path | None = None
    prices_usd_per_mtok: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    load_wait_seconds: float = 2.0
    """How long ``rlm_load`` waits for a load before it returns the load's status instead."""
    strategy: str = "explore"
    """How a query starts: ``explore``, ``locate-first`` or ``locate-only`` (see the engine)."""
