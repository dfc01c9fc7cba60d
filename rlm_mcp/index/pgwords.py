"""Words for ranked search on PostgreSQL: SQLite's own FTS5 tokenizer.

Ranked search on PostgreSQL gives exactly the SQLite store's FTS5
``bm25(fts, 8.0, 2.0, 1.0)``: the words of every ranked-search row come from
SQLite's ``porter unicode61`` tokenizer (an in-memory FTS5 table read back
through ``fts5vocab``), so both stores see the same terms, and the store
evaluates FTS5's formula in the same order on the same doubles.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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
