"""The reads of the PostgreSQL index: :class:`Reads`, the query side of
:class:`~rlm_mcp.index.store.postgres.store.PostgresStore`, over pooled connections
that retry while a restarted server comes back.

Every query sees this identity's rows, and for an overlay its base's rows for
the paths it has not shadowed (:func:`~rlm_mcp.index.store.postgres.schema.visible`).
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.model import (
    Definition,
    DefQuery,
    FileEntry,
    FileGraph,
    FileRow,
    Reference,
    SkippedFile,
    SkipRow,
    TextHit,
    file_entries,
)
from rlm_mcp.index.store.common import (
    DEF_COLUMNS,
    ENTRY_COLUMNS,
    FILE_COLUMNS,
    TEXT_BATCH,
    file_rows,
)
from rlm_mcp.index.store.postgres.schema import (
    content_text,
    like_escape,
    one_line,
    safe_location,
    visible,
)
from rlm_mcp.index.store.postgres.words import TOKENS, bm25_query

__all__ = ["CONNECT_TIMEOUT_S", "READ_RETRY_S", "Reads"]

T = TypeVar("T")

CONNECT_TIMEOUT_S = 10
READ_RETRY_S = 15.0


class Reads:
    """The :class:`~rlm_mcp.index.store.base.IndexStore` reads; the store sets the attributes."""

    url: str
    repo_id: int
    base_id: int | None
    _location: str
    _pool: ConnectionPool
    _closed: bool
    _trgm: bool
    _stats: tuple[tuple[Any, ...], int, int] | None

    # -- connections ------------------------------------------------------------------

    def _read(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on a pooled connection; retry over a new one while the server is back soon.

        A restarted server breaks every pooled connection at once: each broken
        one is discarded (the pool checks a connection it gets back) and the
        read runs again until ``READ_RETRY_S`` has passed.
        """
        if self._closed:
            raise IndexUnavailable(f"the index store {self._location} is closed")
        deadline = time.monotonic() + READ_RETRY_S
        delay = 0.05
        while True:
            try:
                with self._pool.connection() as conn:
                    return fn(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise
                if time.monotonic() > deadline:
                    raise IndexUnavailable(
                        f"the index database {safe_location(self.url)} is unreachable: "
                        f"{one_line(exc)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(lambda c: c.execute(sql, params).fetchall())  # type: ignore[arg-type]

    # -- IndexStore: reads ------------------------------------------------------------

    def _p(self, **extra: Any) -> dict[str, Any]:
        return {"me": self.repo_id, "base": self.base_id, **extra}

    def _v(self, alias: str) -> str:
        return visible(alias, self.base_id)

    def meta(self, key: str) -> str | None:
        rows = self._all(
            "SELECT value FROM rlm_meta WHERE repo_id = ANY(%(ids)s) AND key = %(k)s "
            "ORDER BY repo_id = %(me)s DESC LIMIT 1",
            self._p(k=key, ids=[self.repo_id, self.base_id or self.repo_id]),
        )
        return None if not rows else str(rows[0][0])

    def file_rows(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        return file_rows(self._file_select(FILE_COLUMNS, paths))

    def file_entries(self, paths: Sequence[str] | None = None) -> dict[str, FileEntry]:
        return file_entries(self._file_select(ENTRY_COLUMNS, paths))

    def _file_select(self, columns: str, paths: Sequence[str] | None) -> list[Any]:
        """``columns`` of every visible file row, or of the rows of ``paths``, by path."""
        sql = f"SELECT {columns} FROM rlm_files f WHERE {self._v('f')}"
        if paths is None:
            return self._all(f"{sql} ORDER BY path", self._p())
        rows: list[Any] = []
        for i in range(0, len(paths), TEXT_BATCH):
            rows += self._all(
                f"{sql} AND path = ANY(%(paths)s) ORDER BY path",
                self._p(paths=list(paths[i : i + TEXT_BATCH])),
            )
        return rows

    def unparsed_paths(self) -> list[str]:
        """Paths stored by ``put_text`` and not since by ``put_file``."""
        rows = self._all(
            f"SELECT path FROM rlm_files f WHERE {self._v('f')} AND NOT parsed ORDER BY path",
            self._p(),
        )
        return [str(r[0]) for r in rows]

    def text_index_progress(self) -> tuple[int, int]:
        rows = self._all(f"SELECT count(*) FROM rlm_content c WHERE {self._v('c')}", self._p())
        n = int(rows[0][0])
        return n, n

    def skipped_rows(self) -> dict[str, SkipRow]:
        rows = self._all(
            "SELECT path, size, mtime_ns, reason, detail FROM rlm_skipped k "
            f"WHERE {self._v('k')} ORDER BY path",
            self._p(),
        )
        return {r[0]: SkipRow(r[1], r[2], SkippedFile(r[0], r[3], r[4])) for r in rows}

    def text(self, path: str) -> str | None:
        rows = self._all(
            f"SELECT text, raw FROM rlm_content c WHERE {self._v('c')} AND path = %(path)s",
            self._p(path=path),
        )
        return None if not rows else content_text(rows[0][0], rows[0][1])

    def symbol_count(self) -> int:
        rows = self._all(f"SELECT count(*) FROM rlm_defs d WHERE {self._v('d')}", self._p())
        return int(rows[0][0])

    def _paths_matching(self, path_regex: str) -> list[str]:
        rx = re.compile(path_regex)
        rows = self._all(f"SELECT path FROM rlm_files f WHERE {self._v('f')}", self._p())
        return [p for (p,) in rows if rx.match(p) is not None]

    def find_defs(self, query: DefQuery) -> list[Definition]:
        mode, text = query.mode, query.text
        where = self._v("d")
        params = self._p()
        if mode == "exact":
            where += " AND (name = %(text)s OR qualname = %(text)s)"
            params["text"] = text
        elif mode == "prefix":
            low = text.lower()
            where += " AND lower(name) >= %(low)s AND lower(name) < %(high)s"
            params |= {"low": low, "high": low + "\U0010ffff"}
        elif mode == "substring":
            where += " AND strpos(lower(name), %(text)s) > 0"
            params["text"] = text.lower()
        elif mode == "path":
            where += " AND path = %(text)s"
            params["text"] = text
        if query.kinds is not None:
            where += " AND kind = ANY(%(kinds)s)"
            params["kinds"] = sorted(query.kinds)
        if query.path_regex is not None:
            where += " AND path = ANY(%(paths)s)"
            params["paths"] = self._paths_matching(query.path_regex)
        sql = f"SELECT {DEF_COLUMNS} FROM rlm_defs d WHERE {where} ORDER BY path, start_line"
        if mode != "regex":
            rows = self._all(sql + " LIMIT %(limit)s", params | {"limit": query.limit})
            return [Definition(*r) for r in rows]
        rx = re.compile(text)

        def scan(conn: psycopg.Connection[Any]) -> list[Definition]:
            out: list[Definition] = []
            with conn.cursor() as cur:
                for r in cur.stream(sql, params):
                    if rx.search(r[0]) is not None or rx.search(r[1]) is not None:
                        out.append(Definition(*r))
                        if len(out) >= query.limit:
                            break
            return out

        return self._read(scan)

    def refs(self, name: str, limit: int) -> list[Reference]:
        rows = self._all(
            f"SELECT name, path, line, kind FROM rlm_refs r WHERE {self._v('r')} "
            "AND name = %(name)s ORDER BY path, line LIMIT %(limit)s",
            self._p(name=name, limit=limit),
        )
        return [Reference(*r) for r in rows]

    def edges(self, max_defining_files: int = 8) -> list[tuple[str, str, int]]:
        rows = self._all(
            f"WITH vd AS (SELECT name, path FROM rlm_defs d WHERE {self._v('d')}), "
            "d AS (SELECT DISTINCT name, path FROM vd WHERE name IN "
            "(SELECT name FROM vd GROUP BY name HAVING count(DISTINCT path) <= %(m)s)) "
            "SELECT r.path, d.path, count(*) FROM rlm_refs r JOIN d ON r.name = d.name "
            f"WHERE {self._v('r')} AND r.path != d.path GROUP BY r.path, d.path "
            "ORDER BY r.path, d.path",
            self._p(m=max_defining_files),
        )
        return [(str(a), str(b), int(w)) for a, b, w in rows]

    def file_graph(self, max_defining_files: int = 8, max_out: int = 64) -> FileGraph:
        sql = (
            f"WITH f AS MATERIALIZED (SELECT path, row_number() OVER (ORDER BY path) - 1 AS id "
            f"FROM rlm_files vf WHERE {self._v('vf')}), "
            f"vd AS (SELECT name, path FROM rlm_defs dd WHERE {self._v('dd')}), "
            "n AS (SELECT name FROM vd GROUP BY name HAVING count(DISTINCT path) <= %(m)s), "
            "d AS (SELECT DISTINCT vd.name, f.id FROM vd JOIN n ON n.name = vd.name "
            "JOIN f ON f.path = vd.path), "
            "e AS (SELECT f.id AS src, d.id AS dst, count(*) AS w FROM rlm_refs r "
            f"JOIN f ON f.path = r.path JOIN d ON d.name = r.name WHERE {self._v('r')} "
            "AND f.id != d.id GROUP BY f.id, d.id), "
            "k AS (SELECT src, dst, w, "
            "row_number() OVER (PARTITION BY src ORDER BY w DESC, dst) AS rk FROM e) "
            "SELECT src, dst, w FROM k WHERE rk <= %(k)s ORDER BY src, dst"
        )
        params = self._p(m=max_defining_files, k=max_out)

        def read(conn: psycopg.Connection[Any]) -> FileGraph:
            src, dst, weight = array("i"), array("i"), array("q")
            with conn.transaction():  # one snapshot: the ids index the paths read first
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                paths = [
                    str(p)
                    for (p,) in conn.execute(
                        f"SELECT path FROM rlm_files vf WHERE {self._v('vf')} ORDER BY path",
                        self._p(),
                    )
                ]
                with conn.cursor(name="rlm_file_graph") as cur:
                    cur.itersize = 10_000
                    cur.execute(sql, params)  # type: ignore[arg-type]
                    for a, b, w in cur:  # streamed into arrays, never a list
                        src.append(a)
                        dst.append(b)
                        weight.append(w)
            return FileGraph(paths, src, dst, weight)

        return self._read(read)

    def ref_counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        if names is None:
            rows = self._all(
                f"SELECT name, count(*) FROM rlm_refs r WHERE {self._v('r')} GROUP BY name "
                "ORDER BY name",
                self._p(),
            )
        else:
            rows = self._all(
                f"SELECT name, count(*) FROM rlm_refs r WHERE {self._v('r')} "
                "AND name = ANY(%(names)s) GROUP BY name ORDER BY name",
                self._p(names=list(dict.fromkeys(names))),
            )
        return {str(n): int(c) for n, c in rows}

    def grep_candidates(self, alternatives: Sequence[Sequence[str]]) -> set[str] | None:
        """Paths whose text contains, ignoring case, every literal of some alternative.

        A superset (the trigram index narrows, ``ILIKE`` confirms case-insensitively
        as PostgreSQL folds case); ``None`` when pg_trgm is missing or an
        alternative has no literal to look for.
        """
        if not self._trgm or not alternatives:
            return None
        if any(not alt or any(not lit or "\x00" in lit for lit in alt) for alt in alternatives):
            return None
        clauses: list[str] = []
        params = self._p()
        n = 0
        for alt in alternatives:
            parts = []
            for lit in alt:
                params[f"l{n}"] = "%" + like_escape(lit) + "%"
                parts.append(f"text ILIKE %(l{n})s")
                n += 1
            clauses.append("(" + " AND ".join(parts) + ")")
        rows = self._all(
            f"SELECT path FROM rlm_content c WHERE {self._v('c')} AND ({' OR '.join(clauses)})",
            params,
        )
        return {str(r[0]) for r in rows}

    def _doc_stats(self) -> tuple[int, int]:
        """(ranked rows, their tokens): BM25's N and total length, cached per generation.

        Counting every row costs a scan of the repository's rows; the generation
        (of this identity and its base) says when they changed.
        """
        ids = [self.repo_id] if self.base_id is None else [self.repo_id, self.base_id]
        key = tuple(
            sorted(
                self._all(
                    "SELECT repo_id, generation FROM rlm_repos WHERE repo_id = ANY(%s)", (ids,)
                )
            )
        )
        cached = self._stats
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        stats = self._all(
            f"SELECT count(*), coalesce(sum(ntok), 0) FROM rlm_docs d WHERE {self._v('d')}",
            self._p(),
        )
        n_rows, n_tokens = int(stats[0][0]), int(stats[0][1])
        self._stats = (key, n_rows, n_tokens)
        return n_rows, n_tokens

    def text_search(
        self, terms: Sequence[str], limit: int, path_regex: str | None = None
    ) -> list[TextHit]:
        words = list(dict.fromkeys(t for t in terms if t.isalnum()))
        if not words or limit <= 0:
            return []
        phrases = TOKENS.query(words)
        singles = [p[0] if len(p) == 1 else None for p in phrases]
        if all(t is None for t in singles):
            return []
        n_rows, n_tokens = self._doc_stats()
        if n_rows == 0:
            return []
        sql, params = bm25_query(
            singles,
            rows=visible("d", self.base_id, via_index=False),
            n_rows=n_rows,
            n_tokens=n_tokens,
            limit=limit,
            paths=None if path_regex is None else self._paths_matching(path_regex),
        )
        params = self._p(**params)

        def ranked(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            # The planner prices the GIN scan of the terms above reading the
            # repository's rows whole and testing each array; it is several times faster.
            with conn.transaction():
                conn.execute("SET LOCAL enable_seqscan = off")
                return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

        rows = self._read(ranked)
        return [TextHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7])) for r in rows]
