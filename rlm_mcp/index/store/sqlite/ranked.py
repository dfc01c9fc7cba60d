"""Ranked search over the FTS5 table ``fts``: the ``k`` best rows by BM25, exactly as one
query ranks them, without scoring every row that holds a common word (:func:`top_k`)."""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from rlm_mcp.index.model import TextHit
from rlm_mcp.index.store.sqlite.schema import MAX_ROWS_PER_FILE, ROW_BITS

__all__ = ["MAX_PASSES", "text_search", "top_k"]

_BM25 = "bm25(fts, 8.0, 2.0, 1.0)"
_K1 = 1.2
"""FTS5's BM25 ``k1`` (fixed in its ``bm25()``)."""


def text_search(
    conn: sqlite3.Connection, terms: Sequence[str], limit: int, path_regex: str | None = None
) -> list[TextHit]:
    """:meth:`~rlm_mcp.index.store.base.IndexStore.text_search` on one connection."""
    words = [t for t in terms if t.isalnum()]
    if not words or limit <= 0:
        return []
    phrases = [f'"{w}"' for w in dict.fromkeys(words)]
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # one snapshot for the statistics and every pass
    try:
        ranked = top_k(conn, phrases, limit, path_regex)
        if not ranked:
            return []
        rows = _details(conn, [rowid for _, rowid in ranked])
    finally:
        if own:
            conn.execute("COMMIT")
    hits: list[TextHit] = []
    for score, rowid in ranked:
        r = rows.get(rowid)
        if r is not None:
            hits.append(TextHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], -float(score)))
    return hits


def _details(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """(path, start, end, qualname, kind, signature, doc) of ranked rows ``ids``: a
    definition's from ``defs``, a file's own row (``file_id << ROW_BITS``) from ``files``."""
    defs = [i for i in ids if i & MAX_ROWS_PER_FILE]
    files = [i >> ROW_BITS for i in ids if not i & MAX_ROWS_PER_FILE]
    out: dict[int, tuple[Any, ...]] = {}
    if defs:
        for r in conn.execute(
            "SELECT d.id, f.path, d.start_line, d.end_line, d.qualname, d.kind, d.signature, "
            f"d.doc FROM defs d JOIN files f ON f.id = d.id >> {ROW_BITS} "
            f"WHERE d.id IN ({','.join('?' * len(defs))})",
            defs,
        ):
            out[int(r[0])] = tuple(r[1:])
    if files:
        for r in conn.execute(
            f"SELECT id, path, max(1, lines) FROM files WHERE id IN ({','.join('?' * len(files))})",
            files,
        ):
            out[int(r[0]) << ROW_BITS] = (r[1], 1, r[2], "", "file", "", "")
    return out


MAX_PASSES = 12
"""Queries one ranked search runs before it falls back to scoring every matching row."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``buf[i]``: (value, next offset)."""
    v = 0
    for j in range(8):
        b = buf[i + j]
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, i + j + 1
    return (v << 8) | buf[i + 8], i + 9


def _score_bounds(conn: sqlite3.Connection, phrases: Sequence[str]) -> list[float]:
    """Per phrase, a number its term in ``bm25(fts, ...)`` stays below in any row (0: no row).

    FTS5 adds, per phrase, ``idf * f * (k1 + 1) / (f + k)`` with ``k > 0``, so
    ``idf * (k1 + 1)`` bounds it; the IDF comes from the phrase's row count and
    FTS5's own row total (the index's averages record), as FTS5 computes it.
    """
    n_rows = 0
    got = conn.execute("SELECT block FROM fts_data WHERE id = 1").fetchone()
    if got is not None and got[0]:
        n_rows = _varint(bytes(got[0]), 0)[0]
    # The averages record's row total is the very one FTS5's bm25() reads.
    out: list[float] = []
    for p in phrases:
        hits = int(conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (p,)).fetchone()[0])
        if hits == 0:
            out.append(0.0)
            continue
        idf = math.log((max(n_rows, hits) - hits + 0.5) / (hits + 0.5))
        out.append(max(idf, 1e-6) * (_K1 + 1.0) * (1.0 + 1e-9) + 1e-9)
    return out


def top_k(
    conn: sqlite3.Connection, phrases: Sequence[str], k: int, path_regex: str | None
) -> list[tuple[float, int]]:
    """The ``k`` best (bm25, rowid) of the OR of ``phrases``, exactly as one query ranks them.

    Scoring every row that holds a common word costs a microsecond a row, a
    second over a monorepo's hundreds of thousands of matches; most of those rows
    hold one common word and cannot reach the top. So, MaxScore-style, the rows
    are split by which phrases they hold into disjoint passes (a contiguous run
    of the phrases ORed, ANDed with the next run, NOT the rest), best bound
    first; a pass whose bound (the sum of its phrases' :func:`_score_bounds`)
    is at most the k-th score so far is skipped, with every pass after it. A
    pass lists its phrases in the query's order and the excluded ones after,
    which add exact zeros: FTS5 sums the same terms in the same order, so the
    scores are the very doubles of the single query.
    """

    def run(expr: str) -> list[tuple[float, int]]:
        if path_regex is None:
            sql = (
                f"SELECT {_BM25} AS score, rowid FROM fts WHERE fts MATCH ? "
                "ORDER BY score, rowid LIMIT ?"
            )
            args: tuple[object, ...] = (expr, k)
        else:
            sql = (
                f"SELECT {_BM25} AS score, fts.rowid FROM fts JOIN files f "
                f"ON f.id = fts.rowid >> {ROW_BITS} "
                "WHERE fts MATCH ? AND rematch(?, f.path) ORDER BY score, fts.rowid LIMIT ?"
            )
            args = (expr, path_regex, k)
        return [(float(s), int(r)) for s, r in conn.execute(sql, args)]

    if len(phrases) == 1:
        return run(phrases[0])
    bounds = _score_bounds(conn, phrases)
    live = tuple(i for i, b in enumerate(bounds) if b > 0.0)
    if not live:
        return []
    if len(live) == 1:
        return run(phrases[live[0]])

    def ored(group: Sequence[int]) -> str:
        return "(" + " OR ".join(phrases[i] for i in group) + ")"

    Pass = tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]
    order = itertools.count()
    heap: list[tuple[float, int, Pass]] = [(-sum(bounds[i] for i in live), 0, ((live,), ()))]
    best: list[tuple[float, int]] = []
    passes = 0
    while heap:
        neg, _, (groups, excluded) = heapq.heappop(heap)
        if len(best) >= k and -neg <= -best[k - 1][0]:
            break
        if len(groups) == 1 and len(groups[0]) > 1:
            g = groups[0]
            cut = min(
                range(1, len(g)),
                key=lambda c: max(sum(bounds[i] for i in g[:c]), sum(bounds[i] for i in g[c:])),
            )
            a, b = g[:cut], g[cut:]
            ua, ub = sum(bounds[i] for i in a), sum(bounds[i] for i in b)
            heapq.heappush(heap, (neg, next(order), ((a, b), excluded)))
            heapq.heappush(heap, (-ua, next(order), ((a,), tuple(sorted(excluded + b)))))
            heapq.heappush(heap, (-ub, next(order), ((b,), tuple(sorted(excluded + a)))))
            continue
        passes += 1
        if passes > MAX_PASSES:
            return run(ored(live))
        expr = " AND ".join(ored(g) for g in groups)
        if excluded:
            expr = f"({expr}) NOT {ored(excluded)}"
        best = sorted(best + run(expr))[:k]
    return best
