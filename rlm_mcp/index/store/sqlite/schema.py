"""The SQLite index's tables, its schema version, and how a connection to it is opened.

A database whose ``schema_version`` differs is dropped and created anew (the
index is a cache of the repository); the name indexes are recreated on every
open, so a cold load that dropped them and died leaves nothing slow behind.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sqlite3
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MAX_ROWS_PER_FILE",
    "NAME_INDEXES",
    "ROW_BITS",
    "SCHEMA_VERSION",
    "connect",
    "create_tables",
    "db_path_for",
    "deflate",
    "inflate",
    "retry_locked",
    "tri_state",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
BUSY_TIMEOUT_MS = 30_000

ROW_BITS = 20
"""A file's definitions and references are rows ``file_id << ROW_BITS | n`` (``n`` from 1):
one range of the table's own key per file, so no per-file index is stored, and the file
of a row is ``id >> ROW_BITS``. A file is at most 1 MiB (``max_file_bytes``), so fewer
than :data:`MAX_ROWS_PER_FILE` rows of either kind fit in one."""
MAX_ROWS_PER_FILE = (1 << ROW_BITS) - 1

# No text is stored twice (schema 6): a path lives once in ``files`` and everything
# else names the file by its integer id; texts are zlib-compressed; the ranked-search
# table ``fts`` is contentless (its words are derived from the text and the
# definitions when a file's rows are deleted, see write.Batch._unrank) and its rowids
# are the definitions' (``file_id << ROW_BITS`` is the file's own row).
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL, language TEXT, lines INTEGER NOT NULL,
    tokens INTEGER NOT NULL, invalid_utf8 INTEGER NOT NULL DEFAULT 0,
    parsed INTEGER NOT NULL DEFAULT 1, ranked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS content (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file INTEGER NOT NULL UNIQUE, text BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS tri USING fts5(
    text, content='', detail=none, columnsize=0, tokenize='trigram case_sensitive 0'
);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS defs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, qualname TEXT NOT NULL, kind TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, line INTEGER NOT NULL, kind TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    names, pathwords, body, content='', tokenize='porter unicode61'
);
"""

_ALL_TABLES = ("meta", "files", "content", "skipped", "defs", "refs", "fts", "docs", "tri")
"""Every table any schema version had (``docs`` until 5), dropped on a version change."""
NAME_INDEXES = {
    "defs_name": "defs(name)",
    "defs_lname": "defs(lower(name))",
    "defs_qualname": "defs(qualname)",
    "refs_name": "refs(name)",
}
"""The indexes a cold load drops and builds once at the end (``bulk_load``)."""


@functools.lru_cache(maxsize=128)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``REGEXP`` operator (``value REGEXP pattern`` calls this)."""
    return value is not None and _compile(pattern).search(value) is not None


def _match_start(pattern: str, value: str | None) -> bool:
    return value is not None and _compile(pattern).match(value) is not None


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode with the functions the queries call (``regexp``, ``rematch``)."""
    conn = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    conn.create_function("rematch", 2, _match_start, deterministic=True)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-16384")
    return conn


def retry_locked(fn: Callable[[], T]) -> T:
    """Retry ``fn`` while another process holds a lock SQLite's busy handler skips.

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


TEXT_LEVEL = 1
"""zlib level of stored texts: a quarter of their size, decompressed at about 300 MB/s
(level 6 saves 4% more at half the writer's speed; benchmarks/README.md)."""


def deflate(text: str) -> bytes:
    """A text as ``content`` stores it (``surrogatepass``: any ``str`` round-trips)."""
    return zlib.compress(text.encode("utf-8", "surrogatepass"), TEXT_LEVEL)


def inflate(blob: bytes) -> str:
    """The text :func:`deflate` stored."""
    return zlib.decompress(blob).decode("utf-8", "surrogatepass")


def db_path_for(cache_dir: Path, root: Path) -> Path:
    """One database per resolved root: ``<cache_dir>/<name>-<hash>.sqlite``."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return cache_dir / f"{safe}-{digest}.sqlite"


def create_tables(c: sqlite3.Connection) -> None:
    """Inside a write transaction: bring the tables to :data:`SCHEMA_VERSION` (dropping older ones)."""
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
        for table in _ALL_TABLES:
            c.execute(f"DROP TABLE IF EXISTS {table}")
    for stmt in _TABLES.split(";"):
        if stmt.strip():
            c.execute(stmt)
    for name, target in NAME_INDEXES.items():
        c.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
    c.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('tri_done', '1')")
    c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('tri_upto', '0')")


def tri_state(conn: sqlite3.Connection) -> tuple[bool, int]:
    """(``tri_done``, ``tri_upto``): whether the trigram index holds every text, and up to which id."""
    rows = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN ('tri_done', 'tri_upto')").fetchall()
    )
    return rows.get("tri_done", "1") == "1", int(rows.get("tri_upto", "0"))
