"""Searching one repository's index: grep, symbols, references, ranked search, maps.

:class:`Searcher` is what :class:`~rlm_mcp.index.repository.Repository`
delegates its read side to; it sees the index only through the
:class:`~rlm_mcp.index.store.base.IndexStore` protocol and the shared
:class:`~rlm_mcp.index.files.FileTable`.

Grep is the REPL's workhorse. It runs in a helper process per repository
(:mod:`~rlm_mcp.index.search.grepworker`) that keeps the texts in memory (bounded by
:data:`TEXT_CACHE_BYTES`) and is killed when a pattern overruns
:data:`GREP_TIMEOUT`, so no regex can freeze the server. The store's trigram
index narrows the files to those that contain the pattern's required literals
(:mod:`~rlm_mcp.index.search.literals`); within a file, ``str.find`` locates candidate
lines and the regex only checks those.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import rlm_mcp.index.search.ripgrep as ripgrep
from rlm_mcp.errors import SearchError
from rlm_mcp.index.discover.ignore import translate_glob
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.model import Definition, DefQuery, LoadReport, Reference
from rlm_mcp.index.repomap import render_repo_map
from rlm_mcp.index.search.grepworker import GrepRequest, GrepTimeout, GrepWorker
from rlm_mcp.index.search.literals import literal_query
from rlm_mcp.index.search.ranking import STOPWORDS, query_terms
from rlm_mcp.index.store.base import IndexStore

__all__ = [
    "GrepHit",
    "GrepPage",
    "SearchHit",
    "Searcher",
    "glob_regex",
    "grep_block",
    "required_literal",
]

TEXT_CACHE_BYTES = 128 * 1024 * 1024
"""Texts the grep helper keeps in memory; past this it streams them from the store.

Memory is bounded by this, not by the corpus: with the trigram index a grep with
a literal reads only its candidate files, so streaming costs little."""
GREP_TIMEOUT = 10.0
"""Seconds one grep may run before its helper is killed."""
MAX_GREP_RESULTS = 10_000
MAX_GREP_COUNT = 100_000
"""Matching lines a paged grep counts for its total before it calls the total a lower bound."""
MAX_CONTEXT_LINES = 20
"""Hits one grep may return, however many are asked for: capped while they are built."""
MATCH_MODES = ("auto", "exact", "prefix", "substring", "regex")


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


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A ranked search hit: a definition, or a whole file when ``qualname`` is empty."""

    path: str
    line: int
    end_line: int
    qualname: str
    kind: str
    snippet: str
    score: float

    def __str__(self) -> str:
        what = f"{self.kind} {self.qualname}" if self.qualname else "file"
        return f"{self.path}:{self.line}-{self.end_line}: {what}: {self.snippet}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "qualname": self.qualname,
            "kind": self.kind,
            "snippet": self.snippet,
            "score": self.score,
        }


@functools.lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """``**`` spans directories, ``*`` does not; a glob without ``/`` matches at any depth.

    A glob naming a directory also matches every file below it.
    """
    g = glob.strip()
    while g.startswith("./"):
        g = g[2:]
    g = g.strip("/")
    if g in ("", "**", "**/*"):
        return re.compile(r".*", re.DOTALL)
    body = translate_glob(g)
    if "/" not in g:
        body = "(?:.*/)?" + body
    return re.compile(body + r"(?:/.*)?\Z", re.DOTALL)


_BREAKS = set(".^$()[]{}|")


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
            j = i + 1
            if pattern[j : j + 1] == "^":
                j += 1
            if pattern[j : j + 1] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j
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


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
EXACT_NAME_BONUS = 12.0
WORD_NAME_BONUS = 3.0
CALLER_BONUS = 4.0
"""A definition that uses a name the query spells as code ranks below the name's definition."""
SNIPPET_CHARS = 160
KIND_WEIGHTS = {"field": 0.6, "variable": 0.6, "constant": 0.8, "file": 0.9}
"""Questions ask where behaviour lives: functions and classes rank above fields."""


def _same_on_disk(path: Path, size: int, mtime_ns: int) -> bool:
    """Whether the file still has the size and mtime the index read it with."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


class Searcher:
    """Read-side operations over one repository's store and file table; thread-safe."""

    def __init__(
        self,
        table: FileTable,
        store: IndexStore,
        report: Callable[[], LoadReport],
        *,
        grep_timeout: float = GREP_TIMEOUT,
        text_cache_bytes: int = TEXT_CACHE_BYTES,
        max_file_bytes: int = 1 << 30,
    ) -> None:
        self.table = table
        self.store = store
        self._report = report
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._grep = GrepWorker()
        self.grep_timeout = grep_timeout
        self.text_cache_bytes = text_cache_bytes
        self.max_file_bytes = max_file_bytes

    @property
    def version(self) -> int:
        return self.table.version

    def norm(self, path: str) -> str:
        return self.table.norm(path)

    # -- the grep helper -----------------------------------------------------

    def drop_text_cache(self) -> None:
        """Stop the grep helper (it holds the texts); the next grep starts a fresh one."""
        self._grep.close()

    def texts_changed(self, changed: Iterable[tuple[str, str]], gone: Iterable[str]) -> None:
        """The indexer committed these paths: the grep helper re-reads them on its next call."""
        with self._lock:
            self._changed.update(p for p, _ in changed)
            self._changed.update(gone)

    # -- files ---------------------------------------------------------------

    def known(self, path: str) -> str:
        """``path`` as indexed, or a :class:`SearchError` saying why it is not."""
        p = self.table.norm(path)
        entries, skips = self.table.entries, self.table.skips
        if p in entries:
            return p
        skip = skips.get(p)
        if skip is not None:
            raise SearchError(f"{p} is not indexed: skipped ({skip.reason}: {skip.detail})")
        base = "/" + p.rsplit("/", 1)[-1]
        names = [k for k in entries if k.endswith(base)][:5]
        hint = f"; did you mean {', '.join(names)}?" if names else ""
        raise SearchError(f"unknown path: {path!r}{hint}")

    def files(self, glob: str = "**") -> list[str]:
        """Indexed paths matching ``glob`` (``**`` spans directories), sorted."""
        rx = glob_regex(glob)
        return [p for p in self.table.entries if rx.match(p)]

    def text(self, path: str) -> str:
        p = self.known(path)
        got = self.store.text(p)
        if got is None:
            raise SearchError(f"unknown path: {path!r}")
        return got

    def read(self, path: str, start: int = 1, end: int | None = None) -> str:
        """Lines ``start``..``end`` (1-based, inclusive) prefixed with line numbers."""
        lines = self.text(path).splitlines()
        start = max(1, int(start))
        stop = len(lines) if end is None else min(len(lines), int(end))
        width = max(4, len(str(stop)))
        return "\n".join(f"{n:>{width}}| {lines[n - 1]}" for n in range(start, stop + 1))

    # -- grep ----------------------------------------------------------------

    def grep(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        *,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> list[GrepHit]:
        """Line-oriented search, one hit per matching line in path order.

        ``fixed`` takes ``pattern`` literally (no regex); ``offset`` skips that
        many hits; ``context`` adds up to that many lines around each hit.
        """
        return self._grep_run(
            pattern, glob, max_results, ignore_case, fixed, offset, context, False
        ).hits

    def grep_page(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        *,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> GrepPage:
        """Like :meth:`grep`, with the total number of matching lines (counted up to
        :data:`MAX_GREP_COUNT`) so a caller can page with ``offset``."""
        return self._grep_run(pattern, glob, max_results, ignore_case, fixed, offset, context, True)

    def _grep_run(
        self,
        pattern: str,
        glob: str | None,
        max_results: int,
        ignore_case: bool,
        fixed: bool,
        offset: int,
        context: int,
        count: bool,
    ) -> GrepPage:
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
        paths = self.files(glob) if glob else list(self.table.entries)
        alternatives = literal_query(source, flags)
        hints: dict[str, array[int]] | None = None
        if alternatives is not None and paths:
            candidates = self.store.grep_candidates(alternatives)
            if candidates is not None:
                paths = [p for p in paths if p in candidates]
        elif alternatives is None and paths:
            paths, hints = self._ripgrep_candidates(source, flags, paths)
        cap = max(0, min(int(max_results), MAX_GREP_RESULTS))
        if (cap <= 0 and not count) or not paths:
            return GrepPage([], 0, False)
        with self._lock:
            changed, self._changed = self._changed, set()
        request = GrepRequest(
            reader=self.store.reader_spec(),
            version=self.table.version,
            changed=tuple(sorted(changed)),
            cache_limit=self.text_cache_bytes,
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
            rows, seen, stopped = self._grep.run(request, self.grep_timeout)
        except GrepTimeout:
            raise SearchError(
                f"the regex {pattern!r} ran longer than {self.grep_timeout:g}s and was stopped "
                "(nested quantifiers like (a+)+ backtrack exponentially); simplify it or search "
                "for a fixed string"
            ) from None
        except re.error as exc:
            raise SearchError(f"invalid regex {pattern!r}: {exc}") from None
        except RuntimeError as exc:
            with self._lock:
                self._changed |= changed
            raise SearchError(f"grep failed: {exc}") from None
        hits = [GrepHit(p, n, t, tuple(b), tuple(a)) for p, n, t, b, a in rows]
        return GrepPage(hits, seen, stopped)

    def _ripgrep_candidates(
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
                max(self.grep_timeout, ripgrep.TIMEOUT),
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

    # -- symbols -------------------------------------------------------------

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> list[Definition]:
        """Definitions by name; ``auto`` tries exact, then prefix, then substring.

        ``auto`` lists exact matches, then prefix matches (both use an index);
        a substring match scans every name (seconds over millions of
        definitions), so it runs only when nothing starts with ``query``.
        """
        if match not in MATCH_MODES:
            raise SearchError(f"unknown match mode {match!r}; use one of {', '.join(MATCH_MODES)}")
        q = query.strip()
        if match == "regex":
            try:
                re.compile(q)
            except re.error as exc:
                raise SearchError(f"invalid regex {q!r}: {exc}") from None
        modes: list[Literal["exact", "prefix", "substring", "regex"]]
        modes = ["exact", "prefix", "substring"] if match == "auto" else [match]  # type: ignore[list-item]
        kinds = frozenset({kind}) if kind else None
        path_rx = glob_regex(path_glob).pattern if path_glob else None
        out: list[Definition] = []
        seen: set[Definition] = set()
        for mode in modes:
            for d in self.store.find_defs(DefQuery(mode, q, kinds, path_rx, limit)):
                if d not in seen:
                    seen.add(d)
                    out.append(d)
            if len(out) >= limit or (mode == "prefix" and out):
                break
        return out[:limit]

    def definition(self, name: str) -> list[Definition]:
        """Definitions whose name or qualified name is exactly ``name``."""
        return self.store.find_defs(DefQuery("exact", name, limit=200))

    def references(self, name: str, limit: int = 200) -> list[Reference]:
        """Where ``name`` (or the last part of a dotted name) is used."""
        short = name.rsplit(".", 1)[-1].strip()
        return self.store.refs(short, limit)

    def outline(self, path: str) -> list[Definition]:
        return self.store.find_defs(DefQuery("path", self.known(path)))

    def enclosing(self, path: str, line: int) -> Definition | None:
        """The innermost definition whose lines contain ``line`` of ``path`` (None at top level)."""
        return _innermost(self.outline(path), line)

    def callers(self, name: str, limit: int = 200) -> list[tuple[Reference, Definition | None]]:
        """Each use of ``name`` with the innermost definition enclosing it (None at top level).

        Answers "which functions call X" without the caller reading every hit;
        each file's definitions are read once however many uses it holds.
        """
        by_path: dict[str, list[Definition]] = {}
        out: list[tuple[Reference, Definition | None]] = []
        for ref in self.references(name, limit):
            defs = by_path.get(ref.path)
            if defs is None:
                defs = by_path[ref.path] = self.store.find_defs(DefQuery("path", ref.path))
            out.append((ref, _innermost(defs, ref.line)))
        return out

    # -- ranked search -------------------------------------------------------

    def search(self, query: str, limit: int = 20, glob: str | None = None) -> list[SearchHit]:
        """Definitions and files ranked for a question or an identifier, best first.

        BM25 over name words, path words, signatures, docstrings and comments
        (stemmed), plus a bonus for definitions whose name is an identifier
        written in the query; among equal scores, the more used name first.
        """
        if not isinstance(query, str) or not query.strip():
            raise SearchError("the search query is empty")
        limit = max(1, int(limit))
        rx = glob_regex(glob) if glob else None
        scored: dict[tuple[str, int, str], SearchHit] = {}

        def add(hit: SearchHit) -> None:
            if rx is not None and not rx.match(hit.path):
                return
            key = (hit.path, hit.line, hit.qualname)
            old = scored.get(key)
            if old is None or old.score < hit.score:
                scored[key] = hit

        path_rx = rx.pattern if rx is not None else None
        for t in self.store.text_search(query_terms(query), max(50, limit * 5), path_rx):
            snippet = t.signature or t.doc or (t.path if not t.qualname else t.qualname)
            weight = KIND_WEIGHTS.get(t.kind, 1.0)
            add(
                SearchHit(
                    t.path,
                    t.start_line,
                    t.end_line,
                    t.qualname,
                    t.kind,
                    _clip(snippet),
                    t.score * weight,
                )
            )
        for ident in dict.fromkeys(_IDENT.findall(query)):
            if len(ident) < 3 or ident.lower() in STOPWORDS:
                continue
            bonus = EXACT_NAME_BONUS if _looks_like_identifier(ident) else WORD_NAME_BONUS
            for d in self.store.find_defs(DefQuery("exact", ident, path_regex=path_rx, limit=20)):
                prior = scored.get((d.path, d.start_line, d.qualname))
                base = prior.score if prior is not None else 0.0
                add(_def_hit(d, base + bonus))
        idents = self._identifiers(query)
        if idents and sum(round(h.score, 3) > CALLER_BONUS for h in scored.values()) < limit:
            # A caller scores CALLER_BONUS: below ``limit`` better hits it cannot show.
            for ident in idents:
                self._add_callers(ident, add, path_rx)
        if not scored:
            return []
        names = _tied_names(scored.values(), limit)
        uses = self.store.ref_counts(sorted(names)) if names else {}
        ranked = sorted(
            scored.values(),
            key=lambda h: (
                -round(h.score, 3),
                -uses.get(h.qualname.rsplit(".", 1)[-1], 0),
                h.path,
                h.line,
            ),
        )
        return [
            SearchHit(h.path, h.line, h.end_line, h.qualname, h.kind, h.snippet, round(h.score, 3))
            for h in ranked[:limit]
        ]

    def _identifiers(self, query: str) -> list[str]:
        """Names the query spells as code (``load_config``, ``parseURL``, backticked words)."""
        ticked = set(re.findall(r"`([A-Za-z_][\w.]*)`", query))
        return [
            i
            for i in dict.fromkeys(_IDENT.findall(query))
            if len(i) >= 3 and (i in ticked or _looks_like_identifier(i))
        ]

    def _add_callers(
        self, name: str, add: Callable[[SearchHit], None], path_rx: str | None
    ) -> None:
        """The definitions that use ``name``: who breaks when it changes, who calls it."""
        short = name.rsplit(".", 1)[-1]
        by_path: dict[str, list[Definition]] = {}
        seen: set[tuple[str, int]] = set()
        for ref in self.store.refs(short, 300):
            if path_rx is not None and not re.match(path_rx, ref.path):
                continue
            defs = by_path.get(ref.path)
            if defs is None:
                defs = by_path[ref.path] = self.store.find_defs(DefQuery("path", ref.path))
            d = _innermost(defs, ref.line)
            if d is None or d.name == short or (d.path, d.start_line) in seen:
                continue
            seen.add((d.path, d.start_line))
            add(_def_hit(d, CALLER_BONUS))

    # -- overview ------------------------------------------------------------

    def repo_map(self, max_tokens: int = 1024, focus: str | Sequence[str] | None = None) -> str:
        """Ranked overview of files and symbols within ``max_tokens`` (see repomap)."""
        import hashlib

        def fingerprint() -> tuple[str, str]:
            """Names what the map is computed from: the paths; their sizes, mtimes, parse states."""
            paths, contents = hashlib.blake2b(digest_size=16), hashlib.blake2b(digest_size=16)
            for p, e in self.table.entries.items():
                paths.update(f"{p}\n".encode("utf-8", "surrogatepass"))
                contents.update(f"{e.size}\0{e.mtime_ns}\n".encode())
            unparsed = "\n".join(self.store.unparsed_paths())
            contents.update(unparsed.encode("utf-8", "surrogatepass"))
            return paths.hexdigest(), contents.hexdigest()

        return render_repo_map(self, self.store, max_tokens, focus, fingerprint)

    def layout(self, depth: int = 2) -> str:
        """Directory tree down to ``depth`` levels with recursive file counts."""
        counts: dict[str, int] = {}
        paths = list(self.table.entries)
        for p in paths:
            parts = p.split("/")[:-1]
            for k in range(1, min(depth, len(parts)) + 1):
                key = "/".join(parts[:k])
                counts[key] = counts.get(key, 0) + 1
        top = sum(1 for p in paths if "/" not in p)
        lines = [f"./ ({len(paths)} files, {top} at top level)"]
        for key in sorted(counts):
            indent = "  " * key.count("/")
            lines.append(f"  {indent}{key.rsplit('/', 1)[-1]}/ ({counts[key]} files)")
        return "\n".join(lines)

    def summary(self) -> str:
        rep = self._report()
        langs = ", ".join(f"{k} {v}" for k, v in list(rep.languages.items())[:12]) or "none"
        skipped = ", ".join(f"{k} {v}" for k, v in rep.skipped_by_reason().items()) or "none"
        return (
            f"Repository {self.table.root}\n"
            f"{rep.files} files, {rep.lines} lines, {rep.bytes} bytes, ~{rep.tokens} tokens, "
            f"{rep.symbols} symbols\nLanguages: {langs}\nSkipped: {skipped}\n"
            f"Layout:\n{self.layout(2)}"
        )


def _tied_names(hits: Iterable[SearchHit], limit: int) -> set[str]:
    """The names whose use counts can order the first ``limit`` hits.

    Use counts only break ties of the rounded score, so only the names in a
    score tied by several hits, at or above the ``limit``-th best, are counted:
    counting every name costs a scan of the uses of each common one.
    """
    levels: dict[float, list[SearchHit]] = {}
    for h in hits:
        levels.setdefault(round(h.score, 3), []).append(h)
    names: set[str] = set()
    seen = 0
    for level in sorted(levels, reverse=True):
        group = levels[level]
        if len(group) > 1:
            names.update(h.qualname.rsplit(".", 1)[-1] for h in group if h.qualname)
        seen += len(group)
        if seen >= limit:
            break
    return names


def _looks_like_identifier(token: str) -> bool:
    """``load_config``, ``parseURL``, ``Repo.load``: not a plain English word."""
    return "_" in token or "." in token or any(c.isupper() for c in token[1:])


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


def _def_hit(d: Definition, score: float) -> SearchHit:
    return SearchHit(
        d.path,
        d.start_line,
        d.end_line,
        d.qualname,
        d.kind,
        _clip(d.signature or d.doc or d.qualname),
        score,
    )


def _innermost(defs: Sequence[Definition], line: int) -> Definition | None:
    inner: Definition | None = None
    for d in defs:
        if d.start_line <= line <= d.end_line and (
            inner is None or d.start_line >= inner.start_line
        ):
            inner = d
    return inner
