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
the batched writes in :mod:`~rlm_mcp.index.store.postgres.write`, the queries in
:mod:`~rlm_mcp.index.store.postgres.reads`.

A commit-pinned identity may be an *overlay* on another one
(:meth:`PostgresStore.link_base`): it stores only the files that differ, and
reads see its rows plus the base's for every other path.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.store.common import DEF_COLUMNS, TEXT_BATCH, WriterHold
from rlm_mcp.index.store.postgres.reads import CONNECT_TIMEOUT_S, READ_RETRY_S, Reads
from rlm_mcp.index.store.postgres.schema import (
    PER_REPO,
    SCHEMA_VERSION,
    content_text,
    init_schema,
    like_escape,
    lock_key,
    one_line,
    safe_location,
    visible,
)
from rlm_mcp.index.store.postgres.write import Batch

__all__ = ["SCHEMA_VERSION", "PgTextReader", "PostgresStore", "open_text_reader", "safe_location"]


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


class PostgresStore(Reads):
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
        self._writer = WriterHold(self._write_lock)
        self._writer_conn: psycopg.Connection[Any] | None = None
        self._trgm = False
        self._closed = False
        self._stats: tuple[tuple[Any, ...], int, int] | None = None
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                self.repo_id, self.base_id, self._trgm = init_schema(conn, identity)
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

    # -- IndexStore: writes -----------------------------------------------------------

    def writer(self) -> AbstractContextManager[None]:
        """``pg_advisory_lock`` on the identity, on a dedicated connection; re-entrant."""
        return self._writer.hold(self._advisory_lock)

    @contextmanager
    def _advisory_lock(self) -> Iterator[None]:
        """The cross-process half of :meth:`writer`, held by a connection of its own."""
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(
                f"cannot reach the index database {safe_location(self.url)}: {one_line(exc)}"
            ) from None
        self._writer_conn = conn
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (self._writer_key,))
            yield
        finally:
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
        if not self._writer.depth or conn is None:
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
