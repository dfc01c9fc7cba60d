"""The persistent SQLite index of one repository.

File text lives in SQLite (table ``content``) next to the symbols: a warm
load then touches no file bodies, a sandboxed worker can open the database
read-only, and grep can stream texts in large batches when the in-memory
corpus would be too big. The database runs in WAL mode with a busy timeout so
that two server processes may load the same repository at once; writes happen
inside short ``BEGIN IMMEDIATE`` transactions.

Each thread gets its own connection (the MCP server searches from several
threads while the watcher writes from another); in-process writers are also
serialised by a lock so that a reader never waits on SQLite's busy handler for
a writer in the same process.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rlm_mcp.index.model import Definition, Reference, SkippedFile

T = TypeVar("T")

__all__ = ["SCHEMA_VERSION", "FileRow", "Store", "db_path_for"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL, language TEXT, lines INTEGER NOT NULL, tokens INTEGER NOT NULL,
    invalid_utf8 INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS content (path TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS defs (
    name TEXT NOT NULL, qualname TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS defs_name ON defs(name);
CREATE INDEX IF NOT EXISTS defs_lname ON defs(lower(name));
CREATE INDEX IF NOT EXISTS defs_qualname ON defs(qualname);
CREATE INDEX IF NOT EXISTS defs_path ON defs(path);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT NOT NULL, path TEXT NOT NULL, line INTEGER NOT NULL, kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refs_name ON refs(name);
CREATE INDEX IF NOT EXISTS refs_path ON refs(path);
"""

_TABLES = ("meta", "files", "content", "skipped", "defs", "refs")
_SEARCH_INDEXES = {
    "defs_name": "defs(name)",
    "defs_lname": "defs(lower(name))",
    "defs_qualname": "defs(qualname)",
    "defs_path": "defs(path)",
    "refs_name": "refs(name)",
    "refs_path": "refs(path)",
}


@functools.lru_cache(maxsize=128)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``REGEXP`` operator (``value REGEXP pattern`` calls this)."""
    return value is not None and _compile(pattern).search(value) is not None


def _retry_locked(fn: Callable[[], T]) -> T:
    """Retry ``fn`` while another process holds the lock SQLite's busy handler skips.

    Switching to WAL while a second process creates the same database fails
    with "database is locked" at once, without waiting on ``busy_timeout``.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def db_path_for(cache_dir: Path, root: Path) -> Path:
    """One database per resolved root: ``<cache_dir>/<name>-<hash>.sqlite``."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return cache_dir / f"{safe}-{digest}.sqlite"


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    hash: str
    language: str | None
    lines: int
    tokens: int
    invalid_utf8: bool


DefRow = tuple[str, str, str, str, int, int, str, str]
RefRow = tuple[str, str, int, str]


class Store:
    """Thread-safe access to one repository's SQLite index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self.write_lock = threading.RLock()
        self._closed = False
        self._init_schema()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.create_function("regexp", 2, _regexp, deterministic=True)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-16384")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _init_schema(self) -> None:
        conn = self.conn
        mode = _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        if mode and str(mode[0]).lower() != "wal":
            log.warning("SQLite index %s is not in WAL mode (%s)", self.path, mode[0])
        with self.transaction() as c:
            has_meta = c.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            version = None
            if has_meta:
                row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = row[0] if row else None
            if version != str(SCHEMA_VERSION):
                if has_meta or version is not None:
                    log.info("index schema %s != %s: rebuilding", version, SCHEMA_VERSION)
                for table in _TABLES:
                    c.execute(f"DROP TABLE IF EXISTS {table}")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error, one writer per process."""
        with self.write_lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    # -- reads ---------------------------------------------------------------

    def file_rows(self) -> dict[str, FileRow]:
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8 FROM files"
        ).fetchall()
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}

    def skipped_rows(self) -> dict[str, tuple[int, int, SkippedFile]]:
        rows = self.conn.execute("SELECT path, size, mtime_ns, reason, detail FROM skipped")
        return {r[0]: (r[1], r[2], SkippedFile(r[0], r[3], r[4])) for r in rows}

    def text(self, path: str) -> str | None:
        row = self.conn.execute("SELECT text FROM content WHERE path=?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def iter_texts(self, paths: Sequence[str], batch: int = 500) -> Iterator[tuple[str, str]]:
        for i in range(0, len(paths), batch):
            chunk = paths[i : i + batch]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT path, text FROM content WHERE path IN ({marks})", chunk
            ).fetchall()
            yield from rows

    def symbol_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM defs").fetchone()[0])

    def query_defs(self, where: str, params: Sequence[object], limit: int) -> list[Definition]:
        rows = self.conn.execute(
            "SELECT name, qualname, kind, path, start_line, end_line, signature, doc FROM defs "
            f"WHERE {where} ORDER BY path, start_line LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [Definition(*r) for r in rows]

    def query_refs(self, name: str, limit: int) -> list[Reference]:
        rows = self.conn.execute(
            "SELECT name, path, line, kind FROM refs WHERE name=? ORDER BY path, line LIMIT ?",
            (name, limit),
        ).fetchall()
        return [Reference(*r) for r in rows]

    def edges(self, max_defining_files: int = 8) -> list[tuple[str, str, int]]:
        """(referencing file, defining file, weight) for every cross-file name use.

        Names defined in more than ``max_defining_files`` files (``get``,
        ``__init__``, ``run``) say little about which file a use points at, and
        joining on them multiplies the edges by the hundreds; they are left out.
        """
        rows = self.conn.execute(
            "WITH d AS (SELECT DISTINCT name, path FROM defs WHERE name IN "
            "(SELECT name FROM defs GROUP BY name HAVING count(DISTINCT path) <= ?)) "
            "SELECT r.path, d.path, count(*) FROM refs r JOIN d ON r.name = d.name "
            "WHERE r.path != d.path GROUP BY r.path, d.path",
            (max_defining_files,),
        ).fetchall()
        return [(str(a), str(b), int(w)) for a, b, w in rows]

    def ref_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT name, count(*) FROM refs GROUP BY name")
        return {str(n): int(c) for n, c in rows}

    # -- writes (call inside transaction()) ------------------------------------

    @staticmethod
    def delete_paths(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
        rows = [(p,) for p in paths]
        for table in ("files", "content", "defs", "refs", "skipped"):
            conn.executemany(f"DELETE FROM {table} WHERE path=?", rows)

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Fill an empty store fast: search indexes are dropped, then built once at the end.

        Keeping a B-tree index current row by row costs more than the rows
        themselves for the hundreds of thousands of references a cold load
        writes; building it afterwards is one sort.
        """
        with self.transaction() as conn:
            for name in _SEARCH_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            yield
        finally:
            with self.transaction() as conn:
                for name, target in _SEARCH_INDEXES.items():
                    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    @staticmethod
    def put_file(
        conn: sqlite3.Connection,
        row: FileRow,
        text: str,
        defs: Sequence[DefRow],
        refs: Sequence[RefRow],
        *,
        fresh: bool = False,
    ) -> None:
        """Store one parsed file; ``fresh`` (a bulk load into an empty store) skips the deletes."""
        p = row.path
        if not fresh:
            conn.execute("DELETE FROM defs WHERE path=?", (p,))
            conn.execute("DELETE FROM refs WHERE path=?", (p,))
            conn.execute("DELETE FROM skipped WHERE path=?", (p,))
        conn.execute(
            "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
            (
                p,
                row.size,
                row.mtime_ns,
                row.hash,
                row.language,
                row.lines,
                row.tokens,
                int(row.invalid_utf8),
            ),
        )
        conn.execute("INSERT OR REPLACE INTO content VALUES (?,?)", (p, text))
        conn.executemany("INSERT INTO defs VALUES (?,?,?,?,?,?,?,?)", defs)
        conn.executemany("INSERT INTO refs VALUES (?,?,?,?)", refs)

    @staticmethod
    def put_skipped(
        conn: sqlite3.Connection,
        skip: SkippedFile,
        size: int,
        mtime_ns: int,
        *,
        fresh: bool = False,
    ) -> None:
        if not fresh:
            Store.delete_paths(conn, [skip.path])
        conn.execute(
            "INSERT INTO skipped VALUES (?,?,?,?,?)",
            (skip.path, size, mtime_ns, skip.reason, skip.detail),
        )

    @staticmethod
    def touch(conn: sqlite3.Connection, path: str, mtime_ns: int) -> None:
        conn.execute("UPDATE files SET mtime_ns=? WHERE path=?", (mtime_ns, path))
