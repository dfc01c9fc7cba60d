"""The PostgreSQL implementation of :class:`~rlm_mcp.index.store.base.IndexStore`.

One database holds the indexes of many repositories: every table carries a
``repo_id``, and a repository is named by a stable *identity* (its remote URL
or root path, plus a commit when the index is pinned to one), not by a local
path, so processes on different machines share one index. Connections come
from a ``psycopg_pool`` pool; reads retry once over a fresh connection when
the server dropped the old one (a restart), and an unreachable server is one
:class:`~rlm_mcp.errors.IndexUnavailable` line.

One writer per repository: :meth:`PostgresStore.writer` holds
``pg_advisory_lock`` on a hash of the identity, on a connection of its own.
If the holder dies its session ends, the lock frees, and the next process
takes over. Each batch is one transaction that also takes a transaction-level
advisory lock, so batches of two processes never interleave.

Ranked search gives exactly SQLite's FTS5 ``bm25(fts, 8.0, 2.0, 1.0)``
(:mod:`~rlm_mcp.index.store.postgres.words`); grep prefilters with ``pg_trgm`` when the
extension is available. The tables are in :mod:`~rlm_mcp.index.store.postgres.schema`,
the batched writes in :mod:`~rlm_mcp.index.store.postgres.write`.

A commit-pinned identity may be an *overlay* on another one
(:meth:`PostgresStore.link_base`): it stores only the files that differ, and
reads see its rows plus the base's for every other path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
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
from rlm_mcp.index.store.postgres.schema import (
    ALL_TABLES,
    DEF_COLUMNS,
    FILE_COLUMNS,
    PER_REPO,
    SCHEMA_VERSION,
    TABLES,
    TERMS,
    TERMS_BY_REPO,
    TRGM,
    content_text,
    like_escape,
    lock_key,
    one_line,
    safe_location,
    visible,
)
from rlm_mcp.index.store.postgres.words import TOKENS, bm25_query
from rlm_mcp.index.store.postgres.write import Batch

__all__ = ["SCHEMA_VERSION", "PgTextReader", "PostgresStore", "open_text_reader", "safe_location"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TEXT_BATCH = 500
CONNECT_TIMEOUT_S = 10
READ_RETRY_S = 15.0


class PgTextReader:
    """Read-only access to file texts, for the grep helper process."""

    def __init__(self, url: str, repo_id: int, base: int | None = None) -> None:
        self._url, self._repo, self._base = url, repo_id, base
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        return self._conn

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for attempt in range(2):
            try:
                conn = self._connection()
                for i in range(0, len(paths), TEXT_BATCH):
                    rows = conn.execute(
                        "SELECT c.path, c.text, c.raw FROM rlm_content c WHERE "
                        f"{visible('c', self._base)} AND c.path = ANY(%(paths)s)",
                        {
                            "me": self._repo,
                            "base": self._base,
                            "paths": list(paths[i : i + TEXT_BATCH]),
                        },
                    ).fetchall()
                    out.update((p, content_text(t, r)) for p, t, r in rows)
                return out
            except psycopg.OperationalError:
                self.close()
                if attempt:
                    raise
        return out

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def open_text_reader(arg: str) -> PgTextReader:
    """The reader :meth:`PostgresStore.reader_spec` names: ``arg`` is JSON {url, repo_id}."""
    spec = json.loads(arg)
    base = spec.get("base")
    return PgTextReader(str(spec["url"]), int(spec["repo_id"]), None if base is None else int(base))


# -- the store ------------------------------------------------------------------------------


class PostgresStore:
    """One repository's index in a shared PostgreSQL database; thread- and process-safe.

    Args:
        url: a libpq connection string or ``postgresql://`` URL.
        identity: the repository's stable name (remote URL or root, plus a commit).
        max_connections: the size of the connection pool.
    """

    def __init__(self, url: str, identity: str, *, max_connections: int = 8) -> None:
        self.url = url
        self.identity = identity
        self._location = f"{safe_location(url)} [{identity}]"
        self._write_lock = threading.RLock()
        self._writer_depth = 0
        self._writer_conn: psycopg.Connection[Any] | None = None
        self._trgm = False
        self._closed = False
        self._stats: tuple[tuple[Any, ...], int, int] | None = None
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                self.repo_id = self._init_schema(conn)
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(
                f"cannot reach the index database {safe_location(url)}: {one_line(exc)}"
            ) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            timeout=READ_RETRY_S,
            reconnect_timeout=READ_RETRY_S,
            open=False,
            name=f"rlm-index-{self.repo_id}",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            self._pool.close()
            raise IndexUnavailable(
                f"cannot reach the index database {safe_location(url)}: {one_line(exc)}"
            ) from None
        self._batch_key = lock_key("batch", identity)
        self._writer_key = lock_key("writer", identity)

    # -- schema -----------------------------------------------------------------------

    def _init_schema(self, conn: psycopg.Connection[Any]) -> int:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", ""),))
            has = conn.execute("SELECT to_regclass('rlm_schema') IS NOT NULL").fetchone()
            version = None
            if has and has[0]:
                row = conn.execute("SELECT max(version) FROM rlm_schema").fetchone()
                version = row[0] if row else None
            if version is not None and version != SCHEMA_VERSION:
                log.info("index schema %s != %s: rebuilding", version, SCHEMA_VERSION)
                for table in ALL_TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            for stmt in TABLES.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            if version != SCHEMA_VERSION:
                conn.execute("DELETE FROM rlm_schema")
                conn.execute("INSERT INTO rlm_schema VALUES (%s)", (SCHEMA_VERSION,))
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", ""),))
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                conn.execute(TRGM)
            self._trgm = True
        except psycopg.Error as exc:
            log.warning("pg_trgm is unavailable (%s): grep reads every text", one_line(exc))
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", ""),))
                conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
                conn.execute(TERMS_BY_REPO)
        except psycopg.Error as exc:
            log.warning(
                "btree_gin is unavailable (%s): ranked search looks terms up across every "
                "repository in the database",
                one_line(exc),
            )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", ""),))
                conn.execute(TERMS)
        conn.execute(
            "INSERT INTO rlm_repos (identity) VALUES (%s) ON CONFLICT (identity) DO NOTHING",
            (self.identity,),
        )
        row = conn.execute(
            "SELECT repo_id, base_id FROM rlm_repos WHERE identity = %s", (self.identity,)
        ).fetchone()
        assert row is not None
        self.base_id: int | None = None if row[1] is None else int(row[1])
        return int(row[0])

    # -- IndexStore: identity ---------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    @property
    def own_path(self) -> Path | None:
        return None

    def reader_spec(self) -> tuple[str, str]:
        spec = {"url": self.url, "repo_id": self.repo_id, "base": self.base_id}
        return (__name__, json.dumps(spec))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        if self._writer_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._writer_conn.close()

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

    # -- IndexStore: writes -----------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[None]:
        """``pg_advisory_lock`` on the identity, on a dedicated connection; re-entrant."""
        with self._write_lock:
            if self._writer_depth:
                self._writer_depth += 1
                try:
                    yield
                finally:
                    self._writer_depth -= 1
                return
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            except psycopg.OperationalError as exc:
                raise IndexUnavailable(
                    f"cannot reach the index database {safe_location(self.url)}: {one_line(exc)}"
                ) from None
            self._writer_conn = conn
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (self._writer_key,))
                self._writer_depth = 1
                yield
            finally:
                self._writer_depth = 0
                self._writer_conn = None
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """One transaction; a lost connection is :class:`IndexUnavailable` (nothing written)."""
        if self._closed:
            raise IndexUnavailable(f"the index store {self._location} is closed")
        try:
            with self._batch() as b:
                yield b
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled):
                raise
            raise IndexUnavailable(
                f"writing to the index database {safe_location(self.url)} failed: {one_line(exc)}"
            ) from None

    @contextmanager
    def _batch(self) -> Iterator[Batch]:
        with self._write_lock, self._pool.connection() as conn, conn.transaction():
            self._check_writer()
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._batch_key,))
            b = Batch(conn, self.repo_id, self.base_id)
            yield b
            b.flush()
            if b.changed:
                conn.execute(
                    "UPDATE rlm_repos SET generation = generation + 1 WHERE repo_id = %s",
                    (self.repo_id,),
                )

    def generation(self) -> int:
        """A number that grows with every committed batch that stored or removed a file.

        Another process compares it to know that the index moved on (see
        :class:`~rlm_mcp.index.store.open.Follower`); mtimes and metadata do not count.
        """
        rows = self._all("SELECT generation FROM rlm_repos WHERE repo_id = %s", (self.repo_id,))
        return int(rows[0][0]) if rows else 0

    def _check_writer(self) -> None:
        """Inside :meth:`writer`: fail the batch if the lock's session is gone.

        The advisory lock lives as long as its session; a server restart or a
        dropped connection ends it, and another process may already write.
        """
        conn = self._writer_conn
        if not self._writer_depth or conn is None:
            return
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise IndexUnavailable(
                f"lost the writer lock on {self._location} ({one_line(exc)}): "
                "another process may be writing; load again to continue"
            ) from None

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Nothing to defer: the indexes are shared by every repository in the database."""
        yield

    # -- sharing indexes between identities (index by commit) -------------------------

    def is_empty(self) -> bool:
        """``True`` when nothing is stored for this identity yet (and it has no base)."""
        if self.base_id is not None:
            return False
        rows = self._all(
            "SELECT NOT EXISTS (SELECT 1 FROM rlm_files WHERE repo_id = %s) AND NOT EXISTS "
            "(SELECT 1 FROM rlm_skipped WHERE repo_id = %s)",
            (self.repo_id, self.repo_id),
        )
        return bool(rows[0][0])

    def identities(self, prefix: str, limit: int = 100) -> list[str]:
        """Other full (not overlay) identities starting with ``prefix`` that hold files, newest first."""
        rows = self._all(
            "SELECT r.identity FROM rlm_repos r WHERE r.identity LIKE %s AND r.repo_id <> %s "
            "AND r.base_id IS NULL AND EXISTS (SELECT 1 FROM rlm_files f WHERE f.repo_id = r.repo_id) "
            "ORDER BY r.repo_id DESC LIMIT %s",
            (like_escape(prefix) + "%", self.repo_id, limit),
        )
        return [str(r[0]) for r in rows]

    def copy_from(self, identity: str) -> int:
        """Replace this identity's index with a copy of ``identity``'s; returns the files copied.

        Held under this identity's writer lock by the caller. Ranked-search rows
        get new ids in the same order, so ties rank as they did in the source.
        """
        with self.batch() as b:
            b.changed = True  # rows change behind the batch's own bookkeeping
            conn = b.conn
            row = conn.execute(
                "SELECT repo_id FROM rlm_repos WHERE identity = %s", (identity,)
            ).fetchone()
            if row is None:
                return 0
            src, dst = int(row[0]), self.repo_id
            for table in PER_REPO:
                conn.execute(f"DELETE FROM {table} WHERE repo_id = %s", (dst,))
            plain = {
                "rlm_meta": "key, value",
                "rlm_files": "path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8, "
                "parsed",
                "rlm_content": "path, text, raw",
                "rlm_skipped": "path, size, mtime_ns, reason, detail",
                "rlm_defs": DEF_COLUMNS,
                "rlm_refs": "name, path, line, kind",
            }
            for table, cols in plain.items():
                conn.execute(
                    f"INSERT INTO {table} (repo_id, {cols}) SELECT %s, {cols} FROM {table} "
                    "WHERE repo_id = %s",
                    (dst, src),
                )
            conn.execute(
                "CREATE TEMP TABLE rlm_doc_map (old bigint PRIMARY KEY, new bigint NOT NULL) "
                "ON COMMIT DROP"
            )
            olds = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM rlm_docs WHERE repo_id = %s ORDER BY id", (src,)
                ).fetchall()
            ]
            if olds:
                news = sorted(
                    int(r[0])
                    for r in conn.execute(
                        "SELECT nextval(pg_get_serial_sequence('rlm_docs', 'id')) "
                        "FROM generate_series(1, %s)",
                        (len(olds),),
                    ).fetchall()
                )
                b._copy("rlm_doc_map", "old, new", list(zip(olds, news, strict=True)))
                conn.execute(
                    "INSERT INTO rlm_docs (id, repo_id, path, start_line, end_line, qualname, "
                    "kind, signature, doc, ntok, terms, ws) SELECT m.new, %s, d.path, "
                    "d.start_line, d.end_line, d.qualname, d.kind, d.signature, d.doc, d.ntok, "
                    "d.terms, d.ws FROM rlm_docs d "
                    "JOIN rlm_doc_map m ON m.old = d.id WHERE d.repo_id = %s",
                    (dst, src),
                )
            n = conn.execute("SELECT count(*) FROM rlm_files WHERE repo_id = %s", (dst,)).fetchone()
            b.set_meta("seeded_from", identity)
        return int(n[0]) if n else 0

    def link_base(self, identity: str) -> bool:
        """Make this (empty) identity an overlay on ``identity``'s index; ``False`` if none.

        Nothing is copied: reads see the base's rows except for the paths this
        identity writes or deletes itself. The base must be a full identity.
        """
        with self.batch() as b:
            b.changed = True  # rows change behind the batch's own bookkeeping
            row = b.conn.execute(
                "SELECT repo_id FROM rlm_repos WHERE identity = %s AND base_id IS NULL",
                (identity,),
            ).fetchone()
            if row is None:
                return False
            for table in PER_REPO:
                b.conn.execute(f"DELETE FROM {table} WHERE repo_id = %s", (self.repo_id,))
            b.conn.execute(
                "UPDATE rlm_repos SET base_id = %s WHERE repo_id = %s", (int(row[0]), self.repo_id)
            )
            b.set_meta("seeded_from", identity)
        self.base_id = int(row[0])
        return True

    def index_texts(self, max_files: int) -> bool:
        """Nothing to catch up: the trigram index is kept current by every write."""
        return True

    def check(self) -> str | None:
        """``None`` when every file has its text, else how many do not."""
        try:
            row = self._all(
                f"SELECT count(*) FROM rlm_files f WHERE {visible('f', self.base_id)} AND NOT EXISTS "
                "(SELECT 1 FROM rlm_content c WHERE c.repo_id = f.repo_id AND c.path = f.path)",
                self._p(),
            )
        except IndexUnavailable as exc:
            return str(exc)
        missing = int(row[0][0])
        return f"{missing} files have no stored text" if missing else None

    def reset(self) -> None:
        """Drop everything stored for this identity, its link to a base included."""
        with self.batch() as b:
            b.changed = True  # rows change behind the batch's own bookkeeping
            for table in PER_REPO:
                b.conn.execute(f"DELETE FROM {table} WHERE repo_id = %s", (self.repo_id,))
            b.conn.execute(
                "UPDATE rlm_repos SET base_id = NULL WHERE repo_id = %s", (self.repo_id,)
            )
        self.base_id = None

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
        rows = self._file_select(FILE_COLUMNS, paths)
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}

    def file_entries(self, paths: Sequence[str] | None = None) -> dict[str, FileEntry]:
        return file_entries(
            self._file_select("path, size, mtime_ns, language, lines, tokens, invalid_utf8", paths)
        )

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

    def iter_texts(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        for i in range(0, len(paths), TEXT_BATCH):
            rows = self._all(
                f"SELECT path, text, raw FROM rlm_content c WHERE {self._v('c')} "
                "AND path = ANY(%(paths)s)",
                self._p(paths=list(paths[i : i + TEXT_BATCH])),
            )
            for p, t, r in rows:
                yield p, content_text(t, r)

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
