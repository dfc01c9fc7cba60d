"""Searching one repository's index: grep, symbols, references, ranked search, maps.

:class:`Searcher` is what :class:`~rlm_mcp.index.repository.Repository`
delegates its read side to; it sees the index only through the
:class:`~rlm_mcp.index.store.base.IndexStore` protocol and the shared
:class:`~rlm_mcp.index.files.FileTable`. Grep is :mod:`.grep`'s (the
helper process, the trigram and ripgrep narrowing), ranked search
:mod:`.ranked`'s; symbol look-ups and the overview are here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from rlm_mcp.errors import SearchError
from rlm_mcp.index.discover.names import escape, is_raw
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.model import Definition, DefQuery, LoadReport, Reference
from rlm_mcp.index.repomap import render_repo_map
from rlm_mcp.index.search import fused, qualified
from rlm_mcp.index.search.globs import GlobSpec
from rlm_mcp.index.search.grep import (
    GREP_TIMEOUT,
    TEXT_CACHE_BYTES,
    Grep,
    GrepHit,
    GrepPage,
    glob_regex,
    paths_matching,
)
from rlm_mcp.index.search.ranked import SearchHit, enclosing_uses, innermost
from rlm_mcp.index.store.base import IndexStore

__all__ = ["MATCH_MODES", "Searcher"]

MATCH_MODES = ("auto", "exact", "prefix", "substring", "regex")


def _shown(path: str) -> str:
    """``path`` as output can carry it (an OS name escaped, see :mod:`..discover.names`)."""
    return escape(path) if is_raw(path) else path


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
        self._grep = Grep(
            table,
            store,
            timeout=grep_timeout,
            cache_bytes=text_cache_bytes,
            max_file_bytes=max_file_bytes,
        )

    @property
    def version(self) -> int:
        return self.table.version

    def norm(self, path: str) -> str:
        return self.table.norm(path)

    # -- the grep helper -----------------------------------------------------

    def drop_text_cache(self) -> None:
        """Stop the grep helper (it holds the texts); the next grep starts a fresh one."""
        self._grep.close()

    def interrupt_grep(self) -> None:
        """Stop the grep running now, from any thread (Ctrl-C); later greps fail too."""
        self._grep.interrupt()

    def texts_changed(self, changed: Iterable[tuple[str, str]], gone: Iterable[str]) -> None:
        """The indexer committed these paths: the grep helper re-reads them on its next call."""
        self._grep.texts_changed([*(p for p, _ in changed), *gone])

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
        raise SearchError(f"unknown path: '{_shown(path)}'{hint}")

    def files(self, glob: GlobSpec = "**") -> list[str]:
        """Indexed paths matching ``glob`` (``**`` spans directories), sorted."""
        return paths_matching(self.table.entries, glob)

    def text(self, path: str) -> str:
        p = self.known(path)
        got = self.store.text(p)
        if got is None:
            raise SearchError(f"unknown path: '{_shown(path)}'")
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
        glob: GlobSpec | None = None,
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
        return self._grep.run(
            pattern, glob, max_results, ignore_case, fixed, offset, context, False
        ).hits

    def grep_page(
        self,
        pattern: str,
        glob: GlobSpec | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        *,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> GrepPage:
        """Like :meth:`grep`, with the total number of matching lines (counted up to
        :data:`.grep.MAX_GREP_COUNT`) so a caller can page with ``offset``."""
        return self._grep.run(pattern, glob, max_results, ignore_case, fixed, offset, context, True)

    # -- symbols -------------------------------------------------------------

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: GlobSpec | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> list[Definition]:
        """Definitions by name; ``auto`` tries exact, then prefix, then substring.

        ``auto`` lists exact matches, then prefix matches (both use an index);
        a substring match scans every name (seconds over millions of
        definitions), so it runs only when nothing starts with ``query``.
        A dotted query names a definition by its class (``Console.print_j``)
        or its module (``pkg.mod.func``), see :mod:`.qualified`; when its exact
        spelling finds nothing, the parts are compared case-insensitively.
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
        dotted = match != "regex" and "." in q.strip(".")
        for fold in (False, True) if dotted else (False,):
            for mode in modes:
                # A dotted query matches no name, only an exact qualname: a prefix or
                # substring look-up of it in the store would find nothing (the latter slowly).
                found = (
                    self.store.find_defs(DefQuery(mode, q, kinds, path_rx, limit))
                    if not dotted or mode in ("exact", "regex")
                    else []
                )
                if dotted and mode != "regex":
                    found += qualified.resolve(
                        self.store,
                        self.table.entries,
                        q,
                        mode,
                        fold=fold,
                        kinds=kinds,
                        path_regex=path_rx,
                        limit=limit,
                    )
                for d in found:
                    if d not in seen:
                        seen.add(d)
                        out.append(d)
                if len(out) >= limit or (mode == "prefix" and out):
                    break
            if out:
                break
        return out[:limit]

    def did_you_mean(self, query: str, limit: int = 5) -> list[str]:
        """The qualified names nearest ``query`` when :meth:`symbols` finds nothing."""
        return qualified.close_names(self.store, query, limit)

    def definition(self, name: str) -> list[Definition]:
        """Definitions whose name or qualified name is exactly ``name`` (or, dotted,
        whose class or module path it names; see :meth:`symbols`)."""
        found = self.store.find_defs(DefQuery("exact", name, limit=200))
        return found or self.symbols(name, match="exact", limit=200)

    def _used_names(self, name: str) -> list[str]:
        """The names whose uses ``name`` asks for: itself when it is used as spelled,
        else the names of the definitions it resolves to (dotted, a prefix, another case)."""
        short = name.rsplit(".", 1)[-1].strip()
        if "." not in name.strip(".") and self.store.refs(short, 1):
            return [short]
        defs = self.symbols(name, limit=50)
        return list(dict.fromkeys(d.name for d in defs)) or [short]

    def references(self, name: str, limit: int = 200) -> list[Reference]:
        """Where ``name`` is used; it takes the forms :meth:`symbols` takes (``Class.meth``,
        ``pkg.mod.func``, a prefix), and uses are of the last part (not type-resolved)."""
        names = self._used_names(name)
        refs = [r for n in names for r in self.store.refs(n, limit)]
        if len(names) > 1:
            refs.sort(key=lambda r: (r.path, r.line))
        return refs[:limit]

    def outline(self, path: str) -> list[Definition]:
        return self.store.find_defs(DefQuery("path", self.known(path)))

    def enclosing(self, path: str, line: int) -> Definition | None:
        """The innermost definition whose lines contain ``line`` of ``path`` (None at top level)."""
        return innermost(self.outline(path), line)

    def callers(self, name: str, limit: int = 200) -> list[tuple[Reference, Definition | None]]:
        """Each use of ``name`` with the innermost definition enclosing it (None at top level).

        Answers "which functions call X" without the caller reading every hit;
        each file's definitions are read once however many uses it holds.
        ``name`` takes the forms :meth:`references` takes.
        """
        pairs = [p for n in self._used_names(name) for p in enclosing_uses(self.store, n, limit)]
        pairs.sort(key=lambda p: (p[0].path, p[0].line))
        return pairs[:limit]

    # -- ranked search -------------------------------------------------------

    def search(
        self,
        query: str,
        limit: int = 20,
        glob: GlobSpec | None = None,
        *,
        exclude_tests: bool = False,
    ) -> list[SearchHit]:
        """Definitions and lines ranked for a question or an identifier, best first: BM25,
        a ranked grep and a named identifier's callers, fused (see :func:`.fused.search`);
        ``exclude_tests`` leaves tests and fixtures out (by default they rank lower)."""
        return fused.search(self.store, query, limit, glob, exclude_tests=exclude_tests)

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
