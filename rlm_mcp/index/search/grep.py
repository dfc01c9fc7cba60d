"""Grep over one repository's index: hits, pages, globs, and the path from a pattern to
the lines it matches.

Grep is the REPL's workhorse. It runs in a helper process per repository
(:mod:`~rlm_mcp.index.search.grepworker`) that keeps the texts in memory (bounded by
:data:`TEXT_CACHE_BYTES`) and is killed when a pattern overruns
:data:`GREP_TIMEOUT`, so no regex can freeze the server. The store's trigram
index narrows the files to those that contain the pattern's required literals
(:mod:`~rlm_mcp.index.search.literals`); a pattern without one is narrowed by
ripgrep where it is installed (:mod:`~rlm_mcp.index.search.ripgrep`). Within a
file, ``str.find`` locates candidate lines and the regex only checks those.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import rlm_mcp.index.search.ripgrep as ripgrep
from rlm_mcp.errors import SearchError
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.search.globs import GlobSpec, glob_regex, paths_matching
from rlm_mcp.index.search.grepworker import GrepInterrupted, GrepRequest, GrepTimeout, GrepWorker
from rlm_mcp.index.search.literals import literal_query
from rlm_mcp.index.store.base import IndexStore

__all__ = [
    "Grep",
    "GrepHit",
    "GrepPage",
    "glob_regex",
    "grep_block",
    "paths_matching",
    "required_literal",
]

TEXT_CACHE_BYTES = 128 * 1024 * 1024
"""Texts the grep helper keeps in memory; past this it streams them from the store.

Memory is bounded by this, not by the corpus: with the trigram index a grep with
a literal reads only its candidate files, so streaming costs little."""
GREP_TIMEOUT = 10.0
"""Seconds one grep may run before its helper is killed."""
MAX_GREP_RESULTS = 10_000
"""Hits one grep may return, however many are asked for: capped while they are built."""
MAX_GREP_COUNT = 100_000
"""Matching lines a paged grep counts for its total before it calls the total a lower bound."""
MAX_CONTEXT_LINES = 20


@dataclass(frozen=True, slots=True)
class GrepHit:
    """One matching line; ``before``/``after`` are the context lines asked for."""

    path: str
    line: int
    text: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.text}"


def grep_block(hit: GrepHit) -> str:
    """``path:line:text``, with ripgrep's ``path-line-text`` lines around it when it has context."""
    if not hit.before and not hit.after:
        return str(hit)
    first = hit.line - len(hit.before)
    lines = [f"{hit.path}-{first + i}-{t}" for i, t in enumerate(hit.before)]
    lines.append(str(hit))
    lines += [f"{hit.path}-{hit.line + 1 + i}-{t}" for i, t in enumerate(hit.after)]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class GrepPage:
    """A page of hits and the number of matching lines in all (a lower bound when capped)."""

    hits: list[GrepHit]
    total: int
    total_is_lower_bound: bool


_BREAKS = set(".^$()[]{}|")


def _class_end(pattern: str, i: int) -> int:
    """Where the character class opening at ``pattern[i]`` ends: its ``]``, or past the end."""
    n = len(pattern)
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j


def required_literal(pattern: str) -> str:
    """The longest literal run every match must contain, or "" if unsure."""
    if "|" in pattern or pattern.startswith("(?"):
        return ""
    best, run, depth, i, n = "", "", 0, 0, len(pattern)

    def flush() -> None:
        nonlocal best, run
        if len(run) > len(best):
            best = run
        run = ""

    while i < n:
        c = pattern[i]
        if c in "?*" or (c == "{" and pattern[i + 1 : i + 3].startswith("0")):
            run = run[:-1]
            flush()
        elif c in "+{":
            flush()
            if c == "{":
                j = pattern.find("}", i)
                i = n if j < 0 else j
        elif c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt and not nxt.isalnum() and depth == 0:
                run += nxt
            else:
                flush()
            i += 1
        elif c == "[":
            flush()
            i = _class_end(pattern, i)
        elif c == "(":
            flush()
            depth += 1
        elif c == ")":
            flush()
            depth -= 1
        elif c in _BREAKS:
            flush()
        elif depth == 0:
            run += c
        i += 1
    flush()
    return best if len(best) >= 3 else ""


def _same_on_disk(path: Path, size: int, mtime_ns: int) -> bool:
    """Whether the file still has the size and mtime the index read it with."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


class Grep:
    """Grep over one repository's store and file table; thread-safe.

    Owns the helper process that holds the texts and the paths the indexer
    committed since the helper last read them.
    """

    def __init__(
        self,
        table: FileTable,
        store: IndexStore,
        *,
        timeout: float = GREP_TIMEOUT,
        cache_bytes: int = TEXT_CACHE_BYTES,
        max_file_bytes: int = 1 << 30,
    ) -> None:
        self.table = table
        self.store = store
        self.timeout = timeout
        self.cache_bytes = cache_bytes
        self.max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._worker = GrepWorker()

    def close(self) -> None:
        """Stop the helper (it holds the texts); the next grep starts a fresh one."""
        self._worker.close()

    def interrupt(self) -> None:
        """Stop the grep running now (Ctrl-C) and every later one; see
        :meth:`~rlm_mcp.index.search.grepworker.GrepWorker.interrupt`."""
        self._worker.interrupt()
        ripgrep.interrupt()

    def texts_changed(self, paths: Iterable[str]) -> None:
        """The indexer committed ``paths``: the helper re-reads them on its next call."""
        with self._lock:
            self._changed.update(paths)

    def run(
        self,
        pattern: str,
        glob: GlobSpec | None,
        max_results: int,
        ignore_case: bool,
        fixed: bool,
        offset: int,
        context: int,
        count: bool,
    ) -> GrepPage:
        """One grep (see :meth:`~rlm_mcp.index.search.searcher.Searcher.grep`); ``count``
        also counts every matching line, up to :data:`MAX_GREP_COUNT`."""
        if not isinstance(pattern, str) or pattern == "":
            raise SearchError("the search pattern is empty")
        source = re.escape(pattern) if fixed else pattern
        flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
        try:
            rx = re.compile(source, flags)
        except (re.error, TypeError, ValueError, OverflowError) as exc:
            raise SearchError(
                f"invalid regex {pattern!r}: {exc} (pass fixed=True to search for it literally)"
            ) from None
        lit = "" if rx.flags & re.IGNORECASE else (pattern if fixed else required_literal(pattern))
        paths = paths_matching(self.table.entries, glob) if glob else list(self.table.entries)
        alternatives = literal_query(source, flags)
        hints: dict[str, array[int]] | None = None
        if alternatives is not None and paths:
            candidates = self.store.grep_candidates(alternatives)
            if candidates is not None:
                paths = [p for p in paths if p in candidates]
        elif alternatives is None and paths:
            paths, hints = self.ripgrep_candidates(source, flags, paths)
        cap = max(0, min(int(max_results), MAX_GREP_RESULTS))
        if (cap <= 0 and not count) or not paths:
            return GrepPage([], 0, False)
        with self._lock:
            changed, self._changed = self._changed, set()
        request = GrepRequest(
            reader=self.store.reader_spec(),
            version=self.table.version,
            changed=tuple(sorted(changed)),
            cache_limit=self.cache_bytes,
            paths=tuple(paths),
            pattern=source,
            flags=flags,
            literal=lit,
            max_results=cap,
            offset=max(0, int(offset)),
            context=max(0, min(int(context), MAX_CONTEXT_LINES)),
            count=count,
            count_limit=MAX_GREP_COUNT,
            lines=hints,
        )
        try:
            rows, seen, stopped = self._worker.run(request, self.timeout)
        except GrepTimeout:
            raise SearchError(
                f"the regex {pattern!r} ran longer than {self.timeout:g}s and was stopped "
                "(nested quantifiers like (a+)+ backtrack exponentially); simplify it or search "
                "for a fixed string"
            ) from None
        except GrepInterrupted:
            raise SearchError("the search was interrupted") from None
        except re.error as exc:
            raise SearchError(f"invalid regex {pattern!r}: {exc}") from None
        except RuntimeError as exc:
            with self._lock:
                self._changed |= changed
            raise SearchError(f"grep failed: {exc}") from None
        hits = [GrepHit(p, n, t, tuple(b), tuple(a)) for p, n, t, b, a in rows]
        return GrepPage(hits, seen, stopped)

    def ripgrep_candidates(
        self, source: str, flags: int, paths: list[str]
    ) -> tuple[list[str], dict[str, array[int]] | None]:
        """``paths`` narrowed by ripgrep for a pattern with no literal (see :mod:`.ripgrep`),
        with the only lines that can match per file.

        ripgrep reads the working tree; a file whose size or mtime differs from what
        the index read (or with invalid UTF-8, or gone) is kept and checked whole, so
        the hits are always those of the index's texts.
        """
        entries = self.table.entries
        if sum(e.size for p in paths if (e := entries.get(p)) is not None) < ripgrep.MIN_BYTES:
            return paths, None
        relaxed = ripgrep.relax(source, flags)
        if relaxed is None:
            return paths, None
        # While ripgrep reads the tree, find the files that differ from what the index
        # read (edited or deleted since, or another checkout's): they are checked whole.
        stale: set[str] = set()
        root = self.table.root

        def find_stale() -> None:
            stale.update(
                p
                for p in paths
                if (e := entries.get(p)) is None
                or e.invalid_utf8
                or not _same_on_disk(root / p, e.size, e.mtime_ns)
            )

        checker = threading.Thread(target=find_stale, name="rlm-grep-stat", daemon=True)
        checker.start()
        try:
            found = ripgrep.candidates(
                root,
                frozenset(paths),
                relaxed,
                max(self.timeout, ripgrep.TIMEOUT),
                universe=entries.keys(),
                version=self.table.version,
                max_bytes=self.max_file_bytes,
            )
        finally:
            checker.join()
        if found is None:
            return paths, None
        hints: dict[str, array[int]] = {}
        kept: list[str] = []
        for p in paths:
            if p in stale:
                kept.append(p)  # the file is not what the index holds: check the index's text
            elif p in found:
                kept.append(p)
                lines = found[p]
                if lines is not None:
                    hints[p] = lines
        return kept, hints
