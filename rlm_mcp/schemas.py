"""One shape per result: the JSON objects the MCP tools return and ``--json`` prints.

Each result is a :class:`~typing.TypedDict`. The MCP SDK publishes a tool's
TypedDict return type as its output schema, and pydantic reads each field's
description from the docstring under it; the CLI prints the same dicts, and
the REPL's ``repo.*`` functions hand the model the same objects. The
projections below turn the index's values into them: a definition becomes a
:class:`SymbolOut` in :func:`symbol` and nowhere else.

A leaf: it imports the index's value types for type checking only, so the
engine, the server and the CLI can all stand on it, and importing it loads
nothing (``rlm-mcp --help`` stays fast). Results built from the service's and
the engine's own values (:class:`LoadResult` from ``LoadSummary``,
:class:`QueryResult` from ``RLMResult``...) are projected where those values are
known; ``tests/test_schemas.py`` keeps their fields equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, NotRequired, cast

from typing_extensions import TypedDict

if TYPE_CHECKING:
    from rlm_mcp.index import Definition, Reference, SearchHit

__all__ = [
    "CallerOut",
    "CallersResult",
    "CitationOut",
    "ExecOut",
    "FindResult",
    "GrepResult",
    "LoadResult",
    "LocationOut",
    "ModelUsageOut",
    "QueryResult",
    "ReferencesResult",
    "RepoOut",
    "ReposResult",
    "SearchHitOut",
    "SkippedFileOut",
    "SymbolOut",
    "SymbolsResult",
    "TextResult",
    "UnloadResult",
    "UsageOut",
    "caller",
    "callers_result",
    "find_result",
    "reference",
    "references_result",
    "search_hit",
    "symbol",
    "symbols_result",
    "text_result",
]

PARTIAL = (
    "set while a cold load is still extracting symbols in the background: "
    "these results cover only the files done so far"
)
"""What every ``partial`` field means (one text for all of them)."""

# TypedDicts come from typing_extensions: pydantic reads nested stdlib ones only on Python 3.12+.


class SkippedFileOut(TypedDict):
    path: str
    reason: str
    detail: NotRequired[str]


class LoadResult(TypedDict):
    """What rlm_load indexed."""

    name: str
    """name to pass as `repo` in other tools"""
    root: str
    files: int
    bytes: int
    tokens: int
    """approximate tokens of all indexed text"""
    lines: int
    symbols: int
    languages: dict[str, int]
    skipped: dict[str, int]
    """skipped files counted by reason"""
    skipped_files: list[SkippedFileOut]
    """the first 200 skipped files"""
    invalid_utf8: list[str]
    """files decoded with replacement characters"""
    parsed: int
    """files parsed in this load (0 when the cache was fresh)"""
    reused: int
    """files taken unchanged from the cache"""
    removed: int
    seconds: float
    git: bool
    index_version: int
    watching: bool
    reloaded: bool
    """true when this path was already loaded and was refreshed"""
    partial: NotRequired[str | None]
    indexing: NotRequired[str | None]
    """the background pass (text index, then symbols): phase, files done, time left; poll rlm_repos"""
    status: NotRequired[Literal["ready", "loading"]]
    """loading: the load goes on in the background (`files` of `files_total` stored so far);
    poll rlm_repos or call rlm_load again; rlm_search answers from the files on disk meanwhile"""
    files_total: NotRequired[int | None]


class ModelUsageOut(TypedDict):
    calls: int
    attempts: NotRequired[int]
    """HTTP attempts, retried failures included"""
    failed_attempts: NotRequired[int]
    cancelled_attempts: NotRequired[int]
    input_tokens: int
    output_tokens: int
    cost_usd: str
    cache_hits: int
    tokens_estimated: bool
    priced: bool


class UsageOut(TypedDict):
    calls: int
    attempts: NotRequired[int]
    """HTTP attempts, retried failures included"""
    failed_attempts: NotRequired[int]
    cancelled_attempts: NotRequired[int]
    unpriced_models: NotRequired[list[str]]
    """models without a price: their spend is not counted against max_cost_usd"""
    input_tokens: int
    output_tokens: int
    cost_usd: str
    cache_hits: int
    by_model: dict[str, ModelUsageOut]


class CitationOut(TypedDict):
    text: str
    verified: bool
    nearest: list[str]
    """the closest real names, when not verified"""


class SearchHitOut(TypedDict):
    path: str
    line: int
    end_line: int
    qualname: str
    """the definition's qualified name; empty for a whole file or a line"""
    kind: str
    """the definition's kind; ``file`` for a whole file, ``line`` for a line outside any"""
    snippet: str
    score: float
    signals: list[str]
    """which rankings found it: ``bm25`` (names, signatures, docs), ``grep`` (the question's
    words in the text), ``callers`` (uses of a name the question spells as code)"""


class LocationOut(TypedDict):
    """A place repo.locate judged: a definition the index has, with the judge's reason."""

    path: str
    line: int
    end_line: int
    qualname: str
    kind: str
    relevant: bool | None
    """True: judged relevant; None: not judged (the budget or the provider stopped it)"""
    reason: str
    signals: list[str]


class QueryResult(TypedDict):
    """The RLM's answer and how it was reached."""

    answer: str
    status: Literal["completed", "limit_reached", "error"]
    limit: NotRequired[str | None]
    """the guardrail that stopped the query"""
    error: NotRequired[str | None]
    error_kind: NotRequired[str | None]
    """how the provider failed: rate_limited, connection_lost, unreachable, timeout, bad_response, auth"""
    usage: UsageOut
    iterations: int
    max_depth_reached: int
    sub_calls: int
    wall_seconds: float
    evidence: list[str]
    """path:start-end ranges the code read"""
    trajectory: NotRequired[str | None]
    """JSON Lines file with every step"""
    candidates: list[SearchHitOut]
    """what ranked search found for the question before any model call; the fallback when the query ends without an answer"""
    citations: list[CitationOut]
    """paths, path:line and symbols the answer names, checked against the index"""
    located: NotRequired[list[LocationOut]]
    """the places repo.locate judged for the question, best first (locate strategies)"""
    also_relevant: NotRequired[list[LocationOut]]
    """judged places the answer does not cite, ranked: listed after it, not part of its claims"""
    partial: NotRequired[str | None]
    session: NotRequired[str]
    """pass back as `session` to ask a follow-up in the same REPL"""
    session_ttl_seconds: NotRequired[float]
    """how long the session lives unused"""


class FindResult(TypedDict):
    hits: list[SearchHitOut]
    index_version: int
    partial: NotRequired[str | None]
    truncated: NotRequired[bool]
    """more results follow this page: call again with `next_cursor`"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """results after this page"""


class GrepResult(TypedDict):
    hits: list[str]
    """path:line:text; with context, a ripgrep-style block per hit (path-line-text for the lines around it)"""
    truncated: bool
    """more hits follow: call again with `next_cursor` (or offset)"""
    total: int
    """matching lines in all (a lower bound when capped)"""
    total_is_lower_bound: bool
    offset: int
    index_version: int
    partial: NotRequired[str | None]
    """set while the repository still loads: the hits come from a direct scan of the files"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """matching lines after this page (a lower bound when total is)"""


class SymbolOut(TypedDict):
    name: str
    qualname: str
    kind: str
    path: str
    line: int
    end_line: int
    signature: str
    doc: str


class SymbolsResult(TypedDict):
    symbols: list[SymbolOut]
    index_version: int
    partial: NotRequired[str | None]
    truncated: NotRequired[bool]
    """more results follow this page: call again with `next_cursor`"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """results after this page"""
    did_you_mean: NotRequired[list[str]]
    """when nothing matched: the closest names the index knows"""


class ReferencesResult(TypedDict):
    references: list[str]
    """path:line"""
    index_version: int
    partial: NotRequired[str | None]
    truncated: NotRequired[bool]
    """more results follow this page: call again with `next_cursor`"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """results after this page"""


class CallerOut(TypedDict):
    path: str
    line: int
    caller: str | None
    """qualified name of the enclosing definition; null at top level"""
    caller_kind: str | None


class CallersResult(TypedDict):
    callers: list[CallerOut]
    index_version: int
    partial: NotRequired[str | None]
    truncated: NotRequired[bool]
    """more results follow this page: call again with `next_cursor`"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """results after this page"""


class TextResult(TypedDict):
    text: str
    index_version: int
    partial: NotRequired[str | None]


class ExecOut(TypedDict):
    stdout: str
    stderr: str
    error: str | None
    value: str | None
    truncated: bool
    timed_out: bool
    restarted: bool
    """the REPL was restarted and its variables were lost"""
    duration: float
    session: NotRequired[str]
    """pass back as `session` to run in the same REPL (variables kept)"""
    session_ttl_seconds: NotRequired[float]


class RepoOut(TypedDict):
    name: str
    root: str
    files: int
    tokens: int
    symbols: int
    languages: dict[str, int]
    index_version: int
    updated_at: float
    watching: bool
    watch_mode: Literal["inotify", "polling", "stopped"] | None
    """how changes are noticed: polling means the inotify limit was reached"""
    pending_changes: int
    """changes noticed but not yet in the index; index_version lags while > 0"""
    last_applied_at: float | None
    """wall time of the watcher's last successful update"""
    last_error: str | None
    """why updates are failing (they are retried)"""
    loaded_at: float
    partial: NotRequired[str | None]
    indexing: NotRequired[str | None]
    """the background pass of a cold load, while it runs"""
    status: NotRequired[Literal["ready", "loading", "failed"]]
    """loading: rlm_load returned before the load ended; `files` of `files_total` are stored"""
    files_total: NotRequired[int | None]
    fresh: NotRequired[bool]
    """checked to match the disk: watching, nothing pending (file events, a git branch
    switch, rebase or stash), symbols complete; false whenever that is not known"""


class ReposResult(TypedDict):
    repositories: list[RepoOut]
    llm_configured: bool
    sandbox: str
    """isolation level of the REPL sandbox"""
    sessions: NotRequired[int]
    """live sessions (REPLs kept for follow-ups) across every caller"""
    truncated: NotRequired[bool]
    """more results follow this page: call again with `next_cursor`"""
    next_cursor: NotRequired[str | None]
    """pass as `cursor` (with the same arguments) for the next page; null at the end"""
    remaining: NotRequired[int]
    """results after this page"""


class UnloadResult(TypedDict):
    name: str
    root: str
    unloaded: bool


_DEFAULTS: dict[type, dict[str, Any]] = {
    SkippedFileOut: {"detail": ""},
    ModelUsageOut: dict.fromkeys(("attempts", "failed_attempts", "cancelled_attempts"), 0),
    UsageOut: dict.fromkeys(("attempts", "failed_attempts", "cancelled_attempts"), 0),
}
"""Defaults the output schemas state, besides ``null`` for an optional field that may be null."""


def _describe(cls: type) -> None:
    """Let pydantic read the field docstrings, state the defaults and describe ``partial``."""
    defaults = _DEFAULTS.get(cls, {})

    def extra(schema: dict[str, Any]) -> None:
        required = set(schema.get("required", ()))
        for key, prop in schema.get("properties", {}).items():
            if key in defaults:
                prop["default"] = defaults[key]
            elif key not in required and {"type": "null"} in prop.get("anyOf", ()):
                prop["default"] = None
            if key == "partial":
                prop["description"] = PARTIAL

    cls.__pydantic_config__ = {  # type: ignore[attr-defined]
        "use_attribute_docstrings": True,
        "json_schema_extra": extra,
    }


for _cls in (
    SkippedFileOut,
    LoadResult,
    ModelUsageOut,
    UsageOut,
    CitationOut,
    SearchHitOut,
    QueryResult,
    FindResult,
    GrepResult,
    SymbolOut,
    SymbolsResult,
    ReferencesResult,
    CallerOut,
    CallersResult,
    TextResult,
    ExecOut,
    RepoOut,
    ReposResult,
    UnloadResult,
):
    _describe(_cls)


# -- the projections of the index's values -------------------------------------------


def symbol(d: Definition) -> SymbolOut:
    """A definition as every surface shows it (``line`` is where it starts)."""
    return {
        "name": d.name,
        "qualname": d.qualname,
        "kind": d.kind,
        "path": d.path,
        "line": d.start_line,
        "end_line": d.end_line,
        "signature": d.signature,
        "doc": d.doc,
    }


def reference(ref: Reference) -> str:
    """``path:line``."""
    return f"{ref.path}:{ref.line}"


def caller(ref: Reference, enclosing: Definition | None) -> CallerOut:
    """A reference with the definition that contains it (``None`` at top level)."""
    return {
        "path": ref.path,
        "line": ref.line,
        "caller": enclosing.qualname if enclosing else None,
        "caller_kind": enclosing.kind if enclosing else None,
    }


def search_hit(hit: SearchHit) -> SearchHitOut:
    """One ranked hit."""
    return cast(SearchHitOut, hit.as_dict())


def symbols_result(
    defs: Iterable[Definition], version: int, partial: str | None = None
) -> SymbolsResult:
    """``rlm_symbols`` and ``rlm_outline``."""
    return {"symbols": [symbol(d) for d in defs], "index_version": version, "partial": partial}


def references_result(
    refs: Iterable[Reference], version: int, partial: str | None = None
) -> ReferencesResult:
    return {
        "references": [reference(r) for r in refs],
        "index_version": version,
        "partial": partial,
    }


def callers_result(
    pairs: Iterable[tuple[Reference, Definition | None]], version: int, partial: str | None = None
) -> CallersResult:
    return {
        "callers": [caller(ref, d) for ref, d in pairs],
        "index_version": version,
        "partial": partial,
    }


def find_result(hits: Iterable[SearchHit], version: int, partial: str | None = None) -> FindResult:
    return {"hits": [search_hit(h) for h in hits], "index_version": version, "partial": partial}


def text_result(text: str, version: int, partial: str | None = None) -> TextResult:
    """``rlm_read`` and ``rlm_repo_map``."""
    return {"text": text, "index_version": version, "partial": partial}
