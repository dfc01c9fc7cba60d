"""The PostgreSQL implementation of :class:`~rlm_mcp.index.storage.IndexStore`.

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

Ranked search gives exactly SQLite's FTS5 ``bm25(fts, 8.0, 2.0, 1.0)``: the
words of every ranked-search row are produced by SQLite's own ``porter
unicode61`` tokenizer (an in-memory FTS5 table read back through
``fts5vocab``), stored per (row, term) with the column-weighted frequency, and
the score is FTS5's formula evaluated in the same order on the same doubles.
Grep prefilters with ``pg_trgm`` when the extension is available.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.model import Definition, Reference, SkippedFile
from rlm_mcp.index.ranking import DocRow, doc_rows
from rlm_mcp.index.storage import DefQuery, DefRow, FileRow, RefRow, SkipRow, TextHit

__all__ = ["SCHEMA_VERSION", "PgTextReader", "PostgresStore", "open_text_reader", "safe_location"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
TEXT_BATCH = 500
CONNECT_TIMEOUT_S = 10
READ_RETRY_S = 15.0
K1 = 1.2
B = 0.75
COLUMN_WEIGHTS = {"names": 8, "pathwords": 2, "body": 1}
"""FTS5 column weights of ranked search; the SQLite store's ``bm25(fts, 8.0, 2.0, 1.0)``."""

_C = 'COLLATE "C"'
_TABLES = f"""
CREATE TABLE IF NOT EXISTS rlm_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS rlm_repos (
    repo_id bigserial PRIMARY KEY, identity text {_C} NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(), base_id bigint,
    generation bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rlm_shadow (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_meta (
    repo_id bigint NOT NULL, key text {_C} NOT NULL, value text NOT NULL,
    PRIMARY KEY (repo_id, key)
);
CREATE TABLE IF NOT EXISTS rlm_files (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, size bigint NOT NULL,
    mtime_ns bigint NOT NULL, hash text NOT NULL, language text, lines integer NOT NULL,
    tokens integer NOT NULL, invalid_utf8 boolean NOT NULL, parsed boolean NOT NULL,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_content (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, text text {_C} NOT NULL, raw bytea,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_skipped (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, size bigint NOT NULL,
    mtime_ns bigint NOT NULL, reason text NOT NULL, detail text NOT NULL,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_defs (
    repo_id bigint NOT NULL, name text {_C} NOT NULL, qualname text {_C} NOT NULL,
    kind text {_C} NOT NULL, path text {_C} NOT NULL, start_line integer NOT NULL,
    end_line integer NOT NULL, signature text NOT NULL, doc text NOT NULL
);
CREATE TABLE IF NOT EXISTS rlm_refs (
    repo_id bigint NOT NULL, name text {_C} NOT NULL, path text {_C} NOT NULL,
    line integer NOT NULL, kind text NOT NULL
);
CREATE TABLE IF NOT EXISTS rlm_docs (
    id bigserial PRIMARY KEY, repo_id bigint NOT NULL, path text {_C} NOT NULL,
    start_line integer NOT NULL, end_line integer NOT NULL, qualname text NOT NULL,
    kind text NOT NULL, signature text NOT NULL, doc text NOT NULL, ntok integer NOT NULL
);
CREATE TABLE IF NOT EXISTS rlm_terms (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, doc_id bigint NOT NULL,
    term text {_C} NOT NULL, w integer NOT NULL
);
CREATE INDEX IF NOT EXISTS rlm_defs_path ON rlm_defs (repo_id, path, start_line);
CREATE INDEX IF NOT EXISTS rlm_defs_name ON rlm_defs (repo_id, name);
CREATE INDEX IF NOT EXISTS rlm_defs_lname ON rlm_defs (repo_id, lower(name));
CREATE INDEX IF NOT EXISTS rlm_defs_qualname ON rlm_defs (repo_id, qualname);
CREATE INDEX IF NOT EXISTS rlm_refs_path ON rlm_refs (repo_id, path);
CREATE INDEX IF NOT EXISTS rlm_refs_name ON rlm_refs (repo_id, name, path, line);
CREATE INDEX IF NOT EXISTS rlm_docs_path ON rlm_docs (repo_id, path);
CREATE INDEX IF NOT EXISTS rlm_terms_term ON rlm_terms (repo_id, term) INCLUDE (doc_id, w);
CREATE INDEX IF NOT EXISTS rlm_terms_path ON rlm_terms (repo_id, path)
"""
_TRGM = "CREATE INDEX IF NOT EXISTS rlm_content_trgm ON rlm_content USING gin (text gin_trgm_ops)"
_PER_PATH = ("rlm_files", "rlm_content", "rlm_skipped", "rlm_defs", "rlm_refs", "rlm_docs")
_PER_PATH_ALL = (*_PER_PATH, "rlm_terms")
_PER_REPO = (*_PER_PATH_ALL, "rlm_meta", "rlm_shadow")
_ALL = (*_PER_REPO, "rlm_repos", "rlm_schema")
_DEF_COLUMNS = "name, qualname, kind, path, start_line, end_line, signature, doc"
_FILE_COLUMNS = "path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8"


def _lock_key(kind: str, identity: str) -> int:
    """A signed 64-bit advisory-lock key for ``kind`` on one repository identity."""
    digest = hashlib.sha256(f"rlm-mcp:{kind}:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def safe_location(url: str) -> str:
    """``url`` without its password (URL or ``key=value`` form), for messages."""
    if "://" in url:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            cred, host = netloc.rsplit("@", 1)
            netloc = cred.split(":", 1)[0] + "@" + host
        query = "&".join(q for q in parts.query.split("&") if not q.startswith("password="))
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", url)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _vis(alias: str, base: int | None) -> str:
    """SQL: the rows of ``alias`` this identity sees (named parameters ``me`` and ``base``).

    An overlay identity (``base`` set) sees its own rows and those of its base
    whose path it has not shadowed (written or deleted on its own).
    """
    if base is None:
        return f"{alias}.repo_id = %(me)s"
    return (
        f"({alias}.repo_id = %(me)s OR ({alias}.repo_id = %(base)s AND NOT EXISTS "
        f"(SELECT 1 FROM rlm_shadow sh WHERE sh.repo_id = %(me)s AND sh.path = {alias}.path)))"
    )


# -- words for ranked search: SQLite's own tokenizer --------------------------------------


class _Tokens:
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

    def docs(self, rows: Sequence[tuple[str, str, str]]) -> list[tuple[dict[str, int], int]]:
        """For each (names, pathwords, body): {term: weighted frequency} and its token count."""
        out: list[tuple[dict[str, int], int]] = [({}, 0) for _ in rows]
        if not rows:
            return out
        with self._conn() as c:
            c.execute("BEGIN")
            c.executemany(
                "INSERT INTO t(rowid, names, pathwords, body) VALUES (?,?,?,?)",
                [(i + 1, *r) for i, r in enumerate(rows)],
            )
            c.execute("COMMIT")
            ntok = [0] * len(rows)
            for doc, term, col, n in c.execute(
                "SELECT doc, term, col, count(*) FROM v GROUP BY doc, term, col"
            ):
                terms = out[doc - 1][0]
                terms[term] = terms.get(term, 0) + COLUMN_WEIGHTS[col] * n
                ntok[doc - 1] += n
        return [(terms, n) for (terms, _), n in zip(out, ntok, strict=True)]

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


_TOKENS = _Tokens()


# -- the grep helper's reader ---------------------------------------------------------------


def _content_text(text: str, raw: bytes | None) -> str:
    return text if raw is None else bytes(raw).decode("utf-8")


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
                        f"{_vis('c', self._base)} AND c.path = ANY(%(paths)s)",
                        {
                            "me": self._repo,
                            "base": self._base,
                            "paths": list(paths[i : i + TEXT_BATCH]),
                        },
                    ).fetchall()
                    out.update((p, _content_text(t, r)) for p, t, r in rows)
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


# -- writes -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """One path's buffered write: a parsed file, a text still to parse, or a skip."""

    kind: str
    row: FileRow | None = None
    text: str = ""
    defs: Sequence[DefRow] = ()
    refs: Sequence[RefRow] = ()
    docs: Sequence[DocRow] = ()
    skip: tuple[Any, ...] = ()


class _Batch:
    """The writes of one transaction (:class:`~rlm_mcp.index.storage.StoreBatch`).

    Writes are buffered per path and sent with ``COPY`` when the batch ends
    (or before any statement that must see them), after one keyed delete per
    table of every path they replace. A file whose stored text has the same
    hash keeps that text (and its trigram entries): ``put_text`` then replaces
    only the file's row, ``put_file`` everything but the text.
    """

    def __init__(self, conn: psycopg.Connection[Any], repo_id: int, base: int | None) -> None:
        self.conn = conn
        self.repo = repo_id
        self.base = base
        self._pending: dict[str, _Pending] = {}
        self.changed = False
        """Whether a file was stored or removed (an mtime or metadata alone does not count)."""

    # -- StoreBatch ---------------------------------------------------------------

    def delete_paths(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        self.flush()
        if self._delete(sorted(set(paths)), _PER_PATH_ALL) or self._shadow(sorted(set(paths))):
            self.changed = True

    def put_file(
        self,
        row: FileRow,
        text: str,
        defs: Sequence[DefRow],
        refs: Sequence[RefRow],
        docs: Sequence[DocRow] | None = None,
    ) -> None:
        if docs is None:
            docs = doc_rows(row.path, text, row.lines, defs)
        self._add(row.path, _Pending("file", row, text, defs, refs, docs))

    def put_text(self, row: FileRow, text: str) -> None:
        self._add(row.path, _Pending("text", row, text))

    def put_skipped(self, skip: SkippedFile, size: int, mtime_ns: int) -> None:
        self._add(skip.path, _Pending("skip", skip=(size, mtime_ns, skip.reason, skip.detail)))

    def touch(self, path: str, mtime_ns: int) -> None:
        self.flush()
        self.conn.execute(
            "UPDATE rlm_files SET mtime_ns = %s WHERE repo_id = %s AND path = %s",
            (mtime_ns, self.repo, path),
        )

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO rlm_meta (repo_id, key, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (repo_id, key) DO UPDATE SET value = EXCLUDED.value",
            (self.repo, key, value),
        )

    # -- internals ------------------------------------------------------------------

    def _add(self, path: str, item: _Pending) -> None:
        if path in self._pending:
            self.flush()
        self._pending[path] = item

    def _shadow(self, paths: list[str]) -> int:
        """In an overlay, hide the base's rows for ``paths`` (this identity now owns them)."""
        if self.base is None or not paths:
            return 0
        cur = self.conn.execute(
            "INSERT INTO rlm_shadow (repo_id, path) SELECT %s, unnest(%s::text[]) "
            "ON CONFLICT DO NOTHING",
            (self.repo, paths),
        )
        return max(cur.rowcount, 0)

    def _delete(self, paths: list[str], tables: Sequence[str]) -> int:
        """Delete this identity's rows of ``paths`` from ``tables``; returns the rows deleted."""
        if not paths:
            return 0
        n = 0
        for table in tables:
            cur = self.conn.execute(
                f"DELETE FROM {table} WHERE repo_id = %s AND path = ANY(%s)", (self.repo, paths)
            )
            n += max(cur.rowcount, 0)
        return n

    def _copy(
        self,
        table: str,
        columns: str,
        rows: list[tuple[Any, ...]],
        types: Sequence[str] | None = None,
    ) -> None:
        """``COPY`` the rows in; binary when the column ``types`` are given (the big tables)."""
        if not rows:
            return
        binary = " (FORMAT BINARY)" if types else ""
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({columns}) FROM STDIN{binary}") as copy,
        ):
            if types:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        self.changed = True
        r = self.repo
        rows = self.conn.execute(
            "SELECT s.path, NULL FROM rlm_skipped s WHERE s.repo_id = %(r)s "
            "AND s.path = ANY(%(p)s) UNION ALL "
            "SELECT f.path, CASE WHEN EXISTS (SELECT 1 FROM rlm_content c "
            "WHERE c.repo_id = f.repo_id AND c.path = f.path) THEN f.hash END "
            "FROM rlm_files f WHERE f.repo_id = %(r)s AND f.path = ANY(%(p)s)",
            {"r": r, "p": sorted(pending)},
        ).fetchall()
        present = {str(row[0]) for row in rows}
        stored = {str(row[0]): row[1] for row in rows if row[1] is not None}

        def same(path: str, e: _Pending) -> bool:
            return e.row is not None and stored.get(path) == e.row.hash

        row_only = {p: e for p, e in pending.items() if e.kind == "text" and same(p, e)}
        keep_text = {p for p, e in pending.items() if e.kind == "file" and same(p, e)}
        # A path stored under neither files nor skipped has no rows anywhere (every
        # write of a path stores one of them): a cold load deletes nothing.
        replaced = present - set(row_only) - keep_text
        self._delete(sorted(replaced), _PER_PATH_ALL)
        self._delete(sorted(keep_text), [t for t in _PER_PATH_ALL if t != "rlm_content"])
        self._shadow(sorted(pending))
        for p, e in row_only.items():
            assert e.row is not None
            self.conn.execute(
                "UPDATE rlm_files SET size = %s, mtime_ns = %s, hash = %s, language = %s, "
                "lines = %s, tokens = %s, invalid_utf8 = %s WHERE repo_id = %s AND path = %s",
                (
                    e.row.size,
                    e.row.mtime_ns,
                    e.row.hash,
                    e.row.language,
                    e.row.lines,
                    e.row.tokens,
                    e.row.invalid_utf8,
                    r,
                    p,
                ),
            )
        files: list[tuple[Any, ...]] = []
        content: list[tuple[Any, ...]] = []
        skipped: list[tuple[Any, ...]] = []
        defs: list[tuple[Any, ...]] = []
        refs: list[tuple[Any, ...]] = []
        docs: list[DocRow] = []
        for p, e in pending.items():
            if e.kind == "skip":
                skipped.append((r, p, *e.skip))
                continue
            if p in row_only or e.row is None:
                continue
            row = e.row
            files.append(
                (
                    r,
                    p,
                    row.size,
                    row.mtime_ns,
                    row.hash,
                    row.language,
                    row.lines,
                    row.tokens,
                    row.invalid_utf8,
                    e.kind == "file",
                )
            )
            if p not in keep_text:
                if "\x00" in e.text:
                    # PostgreSQL text holds no NUL: the exact text goes to ``raw``; ``text``
                    # (NULs dropped) serves only the trigram prefilter, which stays a superset.
                    content.append((r, p, e.text.replace("\x00", ""), e.text.encode("utf-8")))
                else:
                    content.append((r, p, e.text, None))
            defs.extend((r, *d) for d in e.defs)
            refs.extend((r, *x) for x in e.refs)
            docs.extend(e.docs)
        # Words for ranked search come from SQLite's tokenizer, which releases the
        # GIL: it runs on a helper thread while the other tables are sent.
        words: list[list[tuple[dict[str, int], int]]] = []
        rows3 = [(d[7], d[8], d[9]) for d in docs]
        helper = threading.Thread(
            target=lambda: words.append(_TOKENS.docs(rows3)), name="rlm-pg-words", daemon=True
        )
        helper.start()
        try:
            self._copy(
                "rlm_files",
                "repo_id, path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8, "
                "parsed",
                files,
            )
            self._copy("rlm_content", "repo_id, path, text, raw", content)
            self._copy("rlm_skipped", "repo_id, path, size, mtime_ns, reason, detail", skipped)
            self._copy("rlm_defs", f"repo_id, {_DEF_COLUMNS}", defs)
            self._copy("rlm_refs", "repo_id, name, path, line, kind", refs)
        finally:
            helper.join()
        if docs:
            if not words:
                raise RuntimeError("tokenizing the ranked-search rows failed")
            self._copy_docs(docs, words[0])

    def _copy_docs(self, docs: list[DocRow], tokens: list[tuple[dict[str, int], int]]) -> None:
        ids = sorted(
            int(i)
            for (i,) in self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence('rlm_docs', 'id')) "
                "FROM generate_series(1, %s)",
                (len(docs),),
            ).fetchall()
        )
        r = self.repo
        doc_out: list[tuple[Any, ...]] = []
        term_out: list[tuple[Any, ...]] = []
        for doc_id, d, (terms, ntok) in zip(ids, docs, tokens, strict=True):
            doc_out.append((doc_id, r, d[0], d[1], d[2], d[3], d[4], d[5], d[6], ntok))
            term_out.extend((r, d[0], doc_id, t, w) for t, w in terms.items())
        self._copy(
            "rlm_docs",
            "id, repo_id, path, start_line, end_line, qualname, kind, signature, doc, ntok",
            doc_out,
        )
        self._copy(
            "rlm_terms",
            "repo_id, path, doc_id, term, w",
            term_out,
            ("int8", "text", "int8", "text", "int4"),
        )


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
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                self.repo_id = self._init_schema(conn)
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(
                f"cannot reach the index database {safe_location(url)}: {_one_line(exc)}"
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
                f"cannot reach the index database {safe_location(url)}: {_one_line(exc)}"
            ) from None
        self._batch_key = _lock_key("batch", identity)
        self._writer_key = _lock_key("writer", identity)

    # -- schema -----------------------------------------------------------------------

    def _init_schema(self, conn: psycopg.Connection[Any]) -> int:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("schema", ""),))
            has = conn.execute("SELECT to_regclass('rlm_schema') IS NOT NULL").fetchone()
            version = None
            if has and has[0]:
                row = conn.execute("SELECT max(version) FROM rlm_schema").fetchone()
                version = row[0] if row else None
            if version is not None and version != SCHEMA_VERSION:
                log.info("index schema %s != %s: rebuilding", version, SCHEMA_VERSION)
                for table in _ALL:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            for stmt in _TABLES.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            if version != SCHEMA_VERSION:
                conn.execute("DELETE FROM rlm_schema")
                conn.execute("INSERT INTO rlm_schema VALUES (%s)", (SCHEMA_VERSION,))
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("schema", ""),))
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                conn.execute(_TRGM)
            self._trgm = True
        except psycopg.Error as exc:
            log.warning("pg_trgm is unavailable (%s): grep reads every text", _one_line(exc))
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
                        f"{_one_line(exc)}"
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
                    f"cannot reach the index database {safe_location(self.url)}: {_one_line(exc)}"
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
    def batch(self) -> Iterator[_Batch]:
        if self._closed:
            raise IndexUnavailable(f"the index store {self._location} is closed")
        with self._write_lock, self._pool.connection() as conn, conn.transaction():
            self._check_writer()
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._batch_key,))
            b = _Batch(conn, self.repo_id, self.base_id)
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
        :class:`~rlm_mcp.index.stores.Follower`); mtimes and metadata do not count.
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
                f"lost the writer lock on {self._location} ({_one_line(exc)}): "
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
            (_like_escape(prefix) + "%", self.repo_id, limit),
        )
        return [str(r[0]) for r in rows]

    def copy_from(self, identity: str) -> int:
        """Replace this identity's index with a copy of ``identity``'s; returns the files copied.

        Held under this identity's writer lock by the caller. Ranked-search rows
        get new ids in the same order, so ties rank as they did in the source.
        """
        with self.batch() as b:
            conn = b.conn
            row = conn.execute(
                "SELECT repo_id FROM rlm_repos WHERE identity = %s", (identity,)
            ).fetchone()
            if row is None:
                return 0
            src, dst = int(row[0]), self.repo_id
            for table in _PER_REPO:
                conn.execute(f"DELETE FROM {table} WHERE repo_id = %s", (dst,))
            plain = {
                "rlm_meta": "key, value",
                "rlm_files": "path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8, "
                "parsed",
                "rlm_content": "path, text, raw",
                "rlm_skipped": "path, size, mtime_ns, reason, detail",
                "rlm_defs": _DEF_COLUMNS,
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
                    "kind, signature, doc, ntok) SELECT m.new, %s, d.path, d.start_line, "
                    "d.end_line, d.qualname, d.kind, d.signature, d.doc, d.ntok FROM rlm_docs d "
                    "JOIN rlm_doc_map m ON m.old = d.id WHERE d.repo_id = %s",
                    (dst, src),
                )
                conn.execute(
                    "INSERT INTO rlm_terms (repo_id, path, doc_id, term, w) "
                    "SELECT %s, t.path, m.new, t.term, t.w FROM rlm_terms t "
                    "JOIN rlm_doc_map m ON m.old = t.doc_id WHERE t.repo_id = %s",
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
            row = b.conn.execute(
                "SELECT repo_id FROM rlm_repos WHERE identity = %s AND base_id IS NULL",
                (identity,),
            ).fetchone()
            if row is None:
                return False
            for table in _PER_REPO:
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
                f"SELECT count(*) FROM rlm_files f WHERE {_vis('f', self.base_id)} AND NOT EXISTS "
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
            for table in _PER_REPO:
                b.conn.execute(f"DELETE FROM {table} WHERE repo_id = %s", (self.repo_id,))
            b.conn.execute(
                "UPDATE rlm_repos SET base_id = NULL WHERE repo_id = %s", (self.repo_id,)
            )
        self.base_id = None

    # -- IndexStore: reads ------------------------------------------------------------

    def _p(self, **extra: Any) -> dict[str, Any]:
        return {"me": self.repo_id, "base": self.base_id, **extra}

    def _v(self, alias: str) -> str:
        return _vis(alias, self.base_id)

    def meta(self, key: str) -> str | None:
        rows = self._all(
            "SELECT value FROM rlm_meta WHERE repo_id = ANY(%(ids)s) AND key = %(k)s "
            "ORDER BY repo_id = %(me)s DESC LIMIT 1",
            self._p(k=key, ids=[self.repo_id, self.base_id or self.repo_id]),
        )
        return None if not rows else str(rows[0][0])

    def file_rows(self) -> dict[str, FileRow]:
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM rlm_files f WHERE {self._v('f')} ORDER BY path",
            self._p(),
        )
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}

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
        return None if not rows else _content_text(rows[0][0], rows[0][1])

    def iter_texts(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        for i in range(0, len(paths), TEXT_BATCH):
            rows = self._all(
                f"SELECT path, text, raw FROM rlm_content c WHERE {self._v('c')} "
                "AND path = ANY(%(paths)s)",
                self._p(paths=list(paths[i : i + TEXT_BATCH])),
            )
            for p, t, r in rows:
                yield p, _content_text(t, r)

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
        sql = f"SELECT {_DEF_COLUMNS} FROM rlm_defs d WHERE {where} ORDER BY path, start_line"
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
                params[f"l{n}"] = "%" + _like_escape(lit) + "%"
                parts.append(f"text ILIKE %(l{n})s")
                n += 1
            clauses.append("(" + " AND ".join(parts) + ")")
        rows = self._all(
            f"SELECT path FROM rlm_content c WHERE {self._v('c')} AND ({' OR '.join(clauses)})",
            params,
        )
        return {str(r[0]) for r in rows}

    def text_search(
        self, terms: Sequence[str], limit: int, path_regex: str | None = None
    ) -> list[TextHit]:
        words = list(dict.fromkeys(t for t in terms if t.isalnum()))
        if not words or limit <= 0:
            return []
        phrases = _TOKENS.query(words)
        singles = [p[0] if len(p) == 1 else None for p in phrases]
        distinct = sorted({t for t in singles if t is not None})
        if not distinct:
            return []
        stats = self._all(
            f"SELECT count(*), coalesce(sum(ntok), 0) FROM rlm_docs d WHERE {self._v('d')}",
            self._p(),
        )
        n_rows, n_tokens = int(stats[0][0]), int(stats[0][1])
        if n_rows == 0:
            return []
        hits = dict(
            self._all(
                f"SELECT term, count(*) FROM rlm_terms t WHERE {self._v('t')} "
                "AND term = ANY(%(terms)s) GROUP BY term",
                self._p(terms=distinct),
            )
        )
        avgdl = float(n_tokens) / float(n_rows)
        col = {t: i for i, t in enumerate(distinct)}
        params = self._p(
            terms=distinct, k1=K1, k1p1=K1 + 1.0, omb=1 - B, b=B, avgdl=avgdl, limit=limit
        )
        freqs = []
        for term, i in col.items():
            params[f"t{i}"] = term
            freqs.append(f"coalesce(sum(w) FILTER (WHERE term = %(t{i})s), 0)::float8 AS f{i}")
        score = "0.0::float8"
        for n, single in enumerate(singles):
            if single is None:
                continue
            n_hit = int(hits.get(single, 0))
            idf = math.log((float(n_rows - n_hit) + 0.5) / (float(n_hit) + 0.5))
            params[f"idf{n}"] = idf if idf > 0.0 else 1e-6
            f = f"p.f{col[single]}"
            score += (
                f" + %(idf{n})s::float8 * (({f} * %(k1p1)s::float8) / ({f} + %(k1)s::float8 * "
                "(%(omb)s::float8 + (%(b)s::float8 * d.ntok::float8) / %(avgdl)s::float8)))"
            )
        where = ""
        if path_regex is not None:
            params["paths"] = self._paths_matching(path_regex)
            where = "WHERE d.path = ANY(%(paths)s)"
        rows = self._all(
            f"WITH p AS (SELECT doc_id, {', '.join(freqs)} FROM rlm_terms t "
            f"WHERE {self._v('t')} AND term = ANY(%(terms)s) GROUP BY doc_id) "
            "SELECT d.path, d.start_line, d.end_line, d.qualname, d.kind, d.signature, d.doc, "
            f"{score} AS score FROM p JOIN rlm_docs d ON d.id = p.doc_id {where} "
            "ORDER BY score DESC, d.id LIMIT %(limit)s",
            params,
        )
        return [TextHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7])) for r in rows]


def _like_escape(literal: str) -> str:
    return literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
