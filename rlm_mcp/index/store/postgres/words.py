"""Words for ranked search on PostgreSQL: SQLite's own FTS5 tokenizer.

Ranked search on PostgreSQL gives exactly the SQLite store's FTS5
``bm25(fts, 8.0, 2.0, 1.0)``: the words of every ranked-search row come from
SQLite's ``porter unicode61`` tokenizer (an in-memory FTS5 table read back
through ``fts5vocab``), so both stores see the same terms, and
:func:`bm25_query` evaluates FTS5's formula in the same order on the same doubles.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["COLUMN_WEIGHTS", "K1", "TOKENS", "B", "Tokenizer"]

K1 = 1.2
B = 0.75
COLUMN_WEIGHTS = {"names": 8, "pathwords": 2, "body": 1}
"""FTS5 column weights of ranked search; the SQLite store's ``bm25(fts, 8.0, 2.0, 1.0)``."""


class Tokenizer:
    """SQLite's FTS5 ``porter unicode61`` tokenizer, through in-memory FTS5 tables.

    Using SQLite itself (rather than a second stemmer) is what makes the
    scores equal to the SQLite store's, word for word.
    """

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.execute(
                "CREATE VIRTUAL TABLE t USING fts5(names, pathwords, body, "
                "tokenize='porter unicode61')"
            )
            conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        try:
            yield conn
        finally:
            conn.execute("DELETE FROM t")
            self._idle.put(conn)

    def docs(self, rows: Sequence[tuple[str, str, str]]) -> list[tuple[list[str], list[int], int]]:
        """For each (names, pathwords, body): its terms (in order), their column-weighted
        frequencies, and its token count."""
        out: list[tuple[list[str], list[int], int]] = [([], [], 0) for _ in rows]
        if not rows:
            return out
        weight = " ".join(f"WHEN '{c}' THEN {w}" for c, w in COLUMN_WEIGHTS.items())
        with self._conn() as c:
            c.execute("BEGIN")
            c.executemany(
                "INSERT INTO t(rowid, names, pathwords, body) VALUES (?,?,?,?)",
                [(i + 1, *r) for i, r in enumerate(rows)],
            )
            c.execute("COMMIT")
            ntok = [0] * len(rows)
            for doc, term, w, n in c.execute(
                f"SELECT doc, term, sum(CASE col {weight} END), count(*) FROM v GROUP BY term, doc"
            ):
                terms, ws, _ = out[doc - 1]
                terms.append(term)
                ws.append(w)
                ntok[doc - 1] += n
        return [(terms, ws, n) for (terms, ws, _), n in zip(out, ntok, strict=True)]

    def query(self, words: Sequence[str]) -> list[list[str]]:
        """The tokens FTS5 makes of each query word (one for any alphanumeric word)."""
        with self._conn() as c:
            c.executemany(
                "INSERT INTO t(rowid, names, pathwords, body) VALUES (?,?,'','')",
                [(i + 1, w) for i, w in enumerate(words)],
            )
            out: list[list[str]] = [[] for _ in words]
            for doc, term in c.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
                out[doc - 1].append(term)
        return out


TOKENS = Tokenizer()


def bm25_query(
    singles: Sequence[str | None],
    *,
    rows: str,
    n_rows: int,
    n_tokens: int,
    limit: int,
    paths: Sequence[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters ranking ``rlm_docs`` rows as FTS5's ``bm25()`` would.

    ``singles`` are the query's phrases in order, each one term (``None``: a
    phrase that matches nothing); ``rows`` is the SQL condition on ``d`` that
    selects the repository's rows; ``n_rows`` and ``n_tokens`` are FTS5's row
    count and total length over them. One pass over the rows holding any term:
    their frequencies, the document frequencies, the IDF (``ln`` is the C
    library's ``log``, as in SQLite), then the score summed phrase by phrase
    in FTS5's order and on the same doubles. ``paths`` narrows the result after
    the statistics, as the SQLite store's path filter does.
    """
    distinct = sorted({t for t in singles if t is not None})
    col = {t: i for i, t in enumerate(distinct)}
    params: dict[str, Any] = {f"t{i}": t for t, i in col.items()}
    params |= {"terms": distinct, "k1": K1, "k1p1": K1 + 1.0, "omb": 1 - B, "b": B}
    params |= {"limit": limit, "n_rows": n_rows, "avgdl": float(n_tokens) / float(n_rows)}
    freqs = ", ".join(
        f"coalesce(d.ws[array_position(d.terms, %(t{i})s::text)], 0)::float8 AS f{i}"
        for i in col.values()
    )
    dfs = ", ".join(f"count(*) FILTER (WHERE f{i} > 0) AS n{i}" for i in col.values())
    idfs = ", ".join(
        f"ln(((%(n_rows)s::int8 - n{i})::float8 + 0.5::float8) / "
        f"(n{i}::float8 + 0.5::float8)) AS x{i}"
        for i in col.values()
    )
    guards = ", ".join(
        f"CASE WHEN x{i} > 0.0::float8 THEN x{i} ELSE 1e-6::float8 END AS idf{i}"
        for i in col.values()
    )
    score = "0.0::float8"
    for single in singles:
        if single is None:
            continue
        i = col[single]
        score += (
            f" + i.idf{i} * ((c.f{i} * %(k1p1)s::float8) / (c.f{i} + %(k1)s::float8 * "
            "(%(omb)s::float8 + (%(b)s::float8 * c.ntok::float8) / %(avgdl)s::float8)))"
        )
    where = ""
    if paths is not None:
        params["paths"] = list(paths)
        where = "WHERE c.path = ANY(%(paths)s)"
    sql = (
        "WITH c AS MATERIALIZED (SELECT d.id, d.path, d.start_line, d.end_line, d.qualname, "
        f"d.kind, d.signature, d.doc, d.ntok, {freqs} FROM rlm_docs d "
        f"WHERE {rows} AND d.terms && %(terms)s::text[]), "
        f"n AS MATERIALIZED (SELECT {dfs} FROM c), "
        f"i AS MATERIALIZED (SELECT {guards} FROM (SELECT {idfs} FROM n) x) "
        "SELECT c.path, c.start_line, c.end_line, c.qualname, c.kind, c.signature, c.doc, "
        f"{score} AS score FROM c CROSS JOIN i {where} ORDER BY score DESC, c.id "
        "LIMIT %(limit)s"
    )
    return sql, params
