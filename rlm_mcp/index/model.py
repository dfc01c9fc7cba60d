"""Value types shared by the index: definitions, references, files and the load report."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFINITION_KINDS",
    "Definition",
    "FileEntry",
    "LoadReport",
    "Reference",
    "SkippedFile",
    "TagsResult",
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
