"""Ranked search: definitions and files for a question or an identifier, best first.

The store's full-text index scores name words, path words, signatures,
docstrings and comments (BM25, words from :mod:`~rlm_mcp.index.search.ranking`);
this module adds what BM25 cannot know: a bonus for a definition whose name the
query writes as code, the definitions that use such a name (its callers), and
use counts to break ties.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from rlm_mcp.errors import SearchError
from rlm_mcp.index.model import Definition, DefQuery, Reference
from rlm_mcp.index.search.globs import GlobSpec, glob_regex
from rlm_mcp.index.search.ranking import STOPWORDS, query_terms
from rlm_mcp.index.store.base import IndexStore

__all__ = [
    "SearchHit",
    "clip_snippet",
    "def_hit",
    "enclosing_uses",
    "innermost",
    "looks_like_identifier",
    "search",
]


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
    signals: tuple[str, ...] = ()
    """Which rankings found it (``bm25``, ``grep``, ``callers``; see :mod:`.fused`)."""

    def __str__(self) -> str:
        what = f"{self.kind} {self.qualname}" if self.qualname else self.kind or "file"
        span = f"{self.line}-{self.end_line}" if self.end_line != self.line else f"{self.line}"
        found = f" [{'+'.join(self.signals)}]" if self.signals else ""
        return f"{self.path}:{span}: {what}: {self.snippet}{found}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "qualname": self.qualname,
            "kind": self.kind,
            "snippet": self.snippet,
            "score": self.score,
            "signals": list(self.signals),
        }


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
EXACT_NAME_BONUS = 12.0
WORD_NAME_BONUS = 3.0
CALLER_BONUS = 4.0
"""A definition that uses a name the query spells as code ranks below the name's definition."""
SNIPPET_CHARS = 160
KIND_WEIGHTS = {"field": 0.6, "variable": 0.6, "constant": 0.8, "file": 0.9}
"""Questions ask where behaviour lives: functions and classes rank above fields."""


def search(
    store: IndexStore,
    query: str,
    limit: int = 20,
    glob: GlobSpec | None = None,
    *,
    callers: bool = True,
) -> list[SearchHit]:
    """Definitions and files ranked for a question or an identifier, best first.

    BM25 over name words, path words, signatures, docstrings and comments
    (stemmed), plus a bonus for definitions whose name is an identifier
    written in the query (and, with ``callers``, the definitions that use it);
    among equal scores, the more used name first.
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
    for t in store.text_search(query_terms(query), max(50, limit * 5), path_rx):
        snippet = t.signature or t.doc or (t.path if not t.qualname else t.qualname)
        weight = KIND_WEIGHTS.get(t.kind, 1.0)
        add(
            SearchHit(
                t.path,
                t.start_line,
                t.end_line,
                t.qualname,
                t.kind,
                clip_snippet(snippet),
                t.score * weight,
            )
        )
    for ident in dict.fromkeys(_IDENT.findall(query)):
        if len(ident) < 3 or ident.lower() in STOPWORDS:
            continue
        bonus = EXACT_NAME_BONUS if looks_like_identifier(ident) else WORD_NAME_BONUS
        for d in store.find_defs(DefQuery("exact", ident, path_regex=path_rx, limit=20)):
            prior = scored.get((d.path, d.start_line, d.qualname))
            base = prior.score if prior is not None else 0.0
            add(def_hit(d, base + bonus))
    idents = _identifiers(query)
    if (
        callers
        and idents
        and sum(round(h.score, 3) > CALLER_BONUS for h in scored.values()) < limit
    ):
        # A caller scores CALLER_BONUS: below ``limit`` better hits it cannot show.
        for ident in idents:
            _add_callers(store, ident, add, path_rx)
    if not scored:
        return []
    names = _tied_names(scored.values(), limit)
    uses = store.ref_counts(sorted(names)) if names else {}
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
        SearchHit(
            h.path, h.line, h.end_line, h.qualname, h.kind, h.snippet, round(h.score, 3), ("bm25",)
        )
        for h in ranked[:limit]
    ]


def _identifiers(query: str) -> list[str]:
    """Names the query spells as code (``load_config``, ``parseURL``, backticked words)."""
    ticked = set(re.findall(r"`([A-Za-z_][\w.]*)`", query))
    return [
        i
        for i in dict.fromkeys(_IDENT.findall(query))
        if len(i) >= 3 and (i in ticked or looks_like_identifier(i))
    ]


def _add_callers(
    store: IndexStore, name: str, add: Callable[[SearchHit], None], path_rx: str | None
) -> None:
    """The definitions that use ``name``: who breaks when it changes, who calls it."""
    short = name.rsplit(".", 1)[-1]
    seen: set[tuple[str, int]] = set()
    for _, d in enclosing_uses(store, short, 300, path_rx):
        if d is None or d.name == short or (d.path, d.start_line) in seen:
            continue
        seen.add((d.path, d.start_line))
        add(def_hit(d, CALLER_BONUS))


def enclosing_uses(
    store: IndexStore, name: str, limit: int, path_rx: str | None = None
) -> Iterator[tuple[Reference, Definition | None]]:
    """Each use of ``name`` (or the last part of a dotted name) with the innermost
    definition enclosing it (None at top level); ``path_rx`` narrows the uses.

    Each file's definitions are read once however many uses it holds.
    """
    by_path: dict[str, list[Definition]] = {}
    for ref in store.refs(name.rsplit(".", 1)[-1].strip(), limit):
        if path_rx is not None and not re.match(path_rx, ref.path):
            continue
        defs = by_path.get(ref.path)
        if defs is None:
            defs = by_path[ref.path] = store.find_defs(DefQuery("path", ref.path))
        yield ref, innermost(defs, ref.line)


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


def looks_like_identifier(token: str) -> bool:
    """``load_config``, ``parseURL``, ``Repo.load``, ``$el``: not a plain English word."""
    return "_" in token or "." in token or "$" in token or any(c.isupper() for c in token[1:])


def clip_snippet(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


def def_hit(d: Definition, score: float = 0.0) -> SearchHit:
    """A definition as a hit with ``score``, its snippet the signature (or doc, or name)."""
    return SearchHit(
        d.path,
        d.start_line,
        d.end_line,
        d.qualname,
        d.kind,
        clip_snippet(d.signature or d.doc or d.qualname),
        score,
    )


def innermost(defs: Sequence[Definition], line: int) -> Definition | None:
    inner: Definition | None = None
    for d in defs:
        if d.start_line <= line <= d.end_line and (
            inner is None or d.start_line >= inner.start_line
        ):
            inner = d
    return inner
