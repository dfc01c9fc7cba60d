"""Value types shared by the index: definitions, references, files and the load report."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEFINITION_KINDS",
    "DefQuery",
    "DefRow",
    "Definition",
    "FileEntry",
    "FileGraph",
    "FileRow",
    "IndexProgress",
    "LoadReport",
    "RefRow",
    "Reference",
    "SkipRow",
    "SkippedFile",
    "TagsResult",
    "TextHit",
    "file_entries",
]

DEFINITION_KINDS = frozenset(
    {
        "function",
        "method",
        "class",
        "interface",
        "struct",
        "enum",
        "trait",
        "module",
        "type",
        "constant",
        "variable",
        "field",
        "macro",
    }
)


@dataclass(frozen=True, slots=True)
class Definition:
    """A named definition found by a tags query.

    Lines are 1-based and inclusive. ``qualname`` joins enclosing definitions
    with dots (``Class.method``); ``signature`` is the header line, stripped;
    ``doc`` is the first line of the docstring or leading comment, or "".
    """

    name: str
    qualname: str
    kind: str
    path: str
    start_line: int
    end_line: int
    signature: str = ""
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Reference:
    """An identifier occurrence (a use, not a definition), 1-based line."""

    name: str
    path: str
    line: int
    kind: str = "call"


@dataclass(slots=True)
class TagsResult:
    definitions: list[Definition] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file in the index. ``path`` is POSIX, relative to the repository root."""

    path: str
    size: int
    mtime_ns: int
    language: str | None
    lines: int
    tokens: int
    invalid_utf8: bool = False


FileEntryRow = tuple[str, int, int, str | None, int, int, object]
"""path, size, mtime_ns, language, lines, tokens, invalid_utf8 (any truth value)."""

_ENTRY_SLOTS = tuple(
    FileEntry.__dict__[name].__set__
    for name in ("path", "size", "mtime_ns", "language", "lines", "tokens", "invalid_utf8")
)


def file_entries(rows: list[FileEntryRow]) -> dict[str, FileEntry]:
    """A :class:`FileEntry` per row, keyed by path in path order; sorts ``rows`` in place.

    Equal to ``{r[0]: FileEntry(*r[:6], bool(r[6])) for r in sorted(rows)}`` at
    half the cost: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, and a warm load of a monorepo builds 170,000 entries.
    This sets the slots directly, which is what that call ends up doing.
    """
    rows.sort()
    new = object.__new__
    set_path, set_size, set_mtime, set_language, set_lines, set_tokens, set_invalid = _ENTRY_SLOTS
    out: dict[str, FileEntry] = {}
    for path, size, mtime_ns, language, lines, tokens, invalid in rows:
        e = new(FileEntry)
        set_path(e, path)
        set_size(e, size)
        set_mtime(e, mtime_ns)
        set_language(e, language)
        set_lines(e, lines)
        set_tokens(e, tokens)
        set_invalid(e, bool(invalid))
        out[path] = e
    return out


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that was seen but not indexed, with the reason.

    Reasons: ``binary``, ``too_large``, ``generated``, ``minified``,
    ``unreadable``, ``vanished``, ``symlink_outside_root``, ``symlink_loop``,
    ``symlink_duplicate`` (a link to something inside the root, indexed under its real path),
    ``not_regular``.
    """

    path: str
    reason: str
    detail: str = ""


@dataclass(slots=True)
class LoadReport:
    """What a load did: counts, sizes, languages, skips and timing."""

    root: str
    files: int = 0
    bytes: int = 0
    tokens: int = 0
    lines: int = 0
    symbols: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)
    invalid_utf8: list[str] = field(default_factory=list)
    parsed: int = 0
    reused: int = 0
    removed: int = 0
    seconds: float = 0.0
    git: bool = False

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """Where a load stands: ``phase`` is ``texts``, ``text index``, ``symbols`` or ``complete``.

    A cold load stores every file's text first (the file list, path search and
    grep work from then on), then builds the trigram index and extracts
    symbols and references, in the background in the server.
    """

    phase: str
    done: int
    total: int
    started: float
    """``time.monotonic()`` when the phase began."""

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left at the phase's rate so far; ``None`` before there is a rate."""
        if self.phase == "complete" or self.done <= 0 or self.done >= self.total:
            return None
        return (now - self.started) * (self.total - self.done) / self.done

    def describe(self, now: float) -> str:
        eta = self.eta_seconds(now)
        left = f", about {eta:.0f}s left" if eta is not None else ""
        return f"{self.phase}: {self.done:,} of {self.total:,} files{left}"


# The store's rows and queries (the seam's value types, see rlm_mcp.index.store.base).

DefRow = tuple[str, str, str, str, int, int, str, str]
"""name, qualname, kind, path, start_line, end_line, signature, doc."""
RefRow = tuple[str, str, int, str]
"""name, path, line, kind."""


@dataclass(frozen=True, slots=True)
class FileRow:
    """What the store keeps about one indexed file besides its text."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    language: str | None
    lines: int
    tokens: int
    invalid_utf8: bool


@dataclass(frozen=True, slots=True)
class SkipRow:
    """A file seen but not indexed, with the size and mtime it had then."""

    size: int
    mtime_ns: int
    skip: SkippedFile


@dataclass(frozen=True, slots=True)
class DefQuery:
    """A definition look-up.

    ``mode``: ``exact`` matches ``name`` or ``qualname``; ``prefix`` and
    ``substring`` match the lower-cased name against lower-cased ``text``;
    ``regex`` searches name or qualname with a Python regex; ``path`` returns
    the definitions of file ``text``; ``all`` returns every definition.
    ``kinds`` and ``path_regex`` (a Python regex matched at the path's start)
    narrow any mode. Results come in (path, start_line) order.
    """

    mode: Literal["exact", "prefix", "substring", "regex", "path", "all"]
    text: str = ""
    kinds: frozenset[str] | None = None
    path_regex: str | None = None
    limit: int = 1_000_000


@dataclass(frozen=True, slots=True)
class TextHit:
    """A ranked full-text hit: a definition (``qualname`` set) or a whole file."""

    path: str
    start_line: int
    end_line: int
    qualname: str
    kind: str
    signature: str
    doc: str
    score: float


@dataclass(frozen=True, slots=True)
class FileGraph:
    """The cross-file reference graph: ``paths`` sorted, edges as ids into ``paths``.

    ``src``, ``dst`` and ``weight`` are parallel arrays (``array('i')``,
    ``array('i')``, ``array('q')``), sorted by ``(src, dst)``.
    """

    paths: list[str]
    src: array[int]
    dst: array[int]
    weight: array[int]
