"""The SQLite implementation of :class:`~rlm_mcp.index.store.base.IndexStore`.

Every SQL statement of the index lives in this module. File text lives in
SQLite (table ``content``) next to the symbols: a warm load touches no file
bodies and grep can stream texts in batches. The database runs in WAL mode
with a busy timeout, so several processes may read it while one writes.

One writer per repository: a load or a watcher batch holds
:meth:`SQLiteStore.writer`, an exclusive ``flock`` on ``<db>.lock`` that
serialises writers across processes (a second process loading the same
repository waits, then reuses the first one's work). Inside it, each batch is
a ``BEGIN IMMEDIATE`` transaction, so a crash never leaves half a file.

A cold load may drop the name indexes and build them once at the end
(:meth:`SQLiteStore.bulk_load`); the per-path indexes stay, so replacing a
file is always a keyed delete. Opening a store recreates any index that is
missing, so a load killed half-way leaves nothing slow behind.

Grep prefilters with a trigram index (``tri``: FTS5's trigram tokenizer,
contentless, no positions, about a quarter of the text's size): a pattern's
required literals (:mod:`~rlm_mcp.index.search.literals`) select the candidate files.
Rows of ``content`` get ids that are never reused; every row with an id up to
meta ``tri_upto`` is in ``tri``, and once meta ``tri_done`` is 1 every row is
(each write keeps it so). A cold load defers it and :meth:`SQLiteStore.index_texts`
fills it in steps, while rows past ``tri_upto`` stay candidates for every grep.

Ranked search is an FTS5 table (``porter`` stemming, BM25) over an external
content table ``docs``: one row per definition (its name split into words,
its path, signature, docstring and the comments inside it) and one per file
(its path and module docstring).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import heapq
import itertools
import logging
import math
import os
import re
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rlm_mcp.errors import IndexCorrupted
from rlm_mcp.index.model import (
    Definition,
    DefQuery,
    DefRow,
    FileEntry,
    FileGraph,
    FileRow,
    Reference,
    RefRow,
    SkippedFile,
    SkipRow,
    TextHit,
    file_entries,
)
from rlm_mcp.index.search.ranking import DocRow, doc_rows

T = TypeVar("T")

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "TextReader", "db_path_for", "open_text_reader"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 30_000
TEXT_BATCH = 500

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL, language TEXT, lines INTEGER NOT NULL, tokens INTEGER NOT NULL,
    invalid_utf8 INTEGER NOT NULL DEFAULT 0, parsed INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS content (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, text TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS tri USING fts5(
    text, content='', detail=none, columnsize=0, tokenize='trigram case_sensitive 0'
);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS defs (
    name TEXT NOT NULL, qualname TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT NOT NULL, path TEXT NOT NULL, line INTEGER NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, qualname TEXT NOT NULL, kind TEXT NOT NULL,
    signature TEXT NOT NULL, doc TEXT NOT NULL,
    names TEXT NOT NULL, pathwords TEXT NOT NULL, body TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    names, pathwords, body, content='docs', content_rowid='id',
    tokenize='porter unicode61'
);
CREATE INDEX IF NOT EXISTS defs_path ON defs(path);
CREATE INDEX IF NOT EXISTS refs_path ON refs(path);
CREATE INDEX IF NOT EXISTS docs_path ON docs(path);
"""

_ALL_TABLES = ("meta", "files", "content", "skipped", "defs", "refs", "fts", "docs", "tri")
_NAME_INDEXES = {
    "defs_name": "defs(name)",
    "defs_lname": "defs(lower(name))",
    "defs_qualname": "defs(qualname)",
    "refs_name": "refs(name)",
}
_BM25 = "bm25(fts, 8.0, 2.0, 1.0)"
_K1 = 1.2
"""FTS5's BM25 ``k1`` (fixed in its ``bm25()``)."""
_DEF_COLUMNS = "name, qualname, kind, path, start_line, end_line, signature, doc"


@functools.lru_cache(maxsize=128)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``REGEXP`` operator (``value REGEXP pattern`` calls this)."""
    return value is not None and _compile(pattern).search(value) is not None


def _match_start(pattern: str, value: str | None) -> bool:
    return value is not None and _compile(pattern).match(value) is not None


def _retry_locked(fn: Callable[[], T]) -> T:
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


def db_path_for(cache_dir: Path, root: Path) -> Path:
    """One database per resolved root: ``<cache_dir>/<name>-<hash>.sqlite``."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return cache_dir / f"{safe}-{digest}.sqlite"


class TextReader:
    """Read-only access to file texts, for a helper process (see ``grepworker``)."""

    def __init__(self, db: str) -> None:
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(paths), TEXT_BATCH):
            chunk = list(paths[i : i + TEXT_BATCH])
            marks = ",".join("?" * len(chunk))
            out.update(
                self._conn.execute(
                    f"SELECT path, text FROM content WHERE path IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def close(self) -> None:
        self._conn.close()


def open_text_reader(arg: str) -> TextReader:
    """The reader :meth:`SQLiteStore.reader_spec` names: ``arg`` is the database path."""
    return TextReader(arg)


def _tri_state(conn: sqlite3.Connection) -> tuple[bool, int]:
    rows = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN ('tri_done', 'tri_upto')").fetchall()
    )
    return rows.get("tri_done", "1") == "1", int(rows.get("tri_upto", "0"))


TRIGRAMS_PER_LITERAL = 12
TRI_GARBAGE_MIN = 20_000
TRI_GARBAGE_SHARE = 0.3
"""Replaced texts whose trigram entries linger before the trigram index is rebuilt."""


def _trigram_match(alternatives: Sequence[Sequence[str]]) -> str:
    """An FTS5 query over the trigram table: OR of ANDs of single-trigram phrases.

    A literal of n characters contributes up to :data:`TRIGRAMS_PER_LITERAL` of
    its n-2 trigrams, spread along it (fewer trigrams select a superset).
    """
    ors: list[str] = []
    for alt in alternatives:
        grams: dict[str, None] = {}
        for lit in alt:
            n = len(lit) - 2
            step = max(1, -(-n // TRIGRAMS_PER_LITERAL))
            picks = list(range(0, n, step))
            if picks[-1] != n - 1:
                picks.append(n - 1)
            for i in picks:
                grams[lit[i : i + 3].lower()] = None
        if not grams:
            raise ValueError("an alternative without literals matches every file")
        ors.append("(" + " AND ".join('"' + g.replace('"', '""') + '"' for g in grams) + ")")
    return " OR ".join(ors)


class _Batch:
    """The writes of one transaction (:class:`~rlm_mcp.index.store.base.StoreBatch`)."""

    def __init__(self, conn: sqlite3.Connection, *, bulk: bool) -> None:
        self.conn = conn
        self.bulk = bulk
        self._tri: tuple[bool, int] | None = None
        self.tri_garbage = 0

    def flush(self) -> None:
        """Before commit: count trigram garbage; past the limit, start the index over.

        A rebuilt index is filled in steps by :meth:`SQLiteStore.index_texts` (the
        repository's completion pass); until then unindexed files are candidates
        for every grep, so results stay exact, only slower.
        """
        if not self.tri_garbage:
            return
        c = self.conn
        row = c.execute("SELECT value FROM meta WHERE key='tri_garbage'").fetchone()
        garbage = (int(row[0]) if row else 0) + self.tri_garbage
        self.tri_garbage = 0
        files = int(c.execute("SELECT count(*) FROM content").fetchone()[0])
        if garbage > max(TRI_GARBAGE_MIN, int(files * TRI_GARBAGE_SHARE)):
            c.execute("INSERT INTO tri(tri) VALUES('delete-all')")
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_done', '0')")
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_upto', '0')")
            garbage = 0
        c.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_garbage', ?)", (str(garbage),)
        )

    @property
    def tri_state(self) -> tuple[bool, int]:
        """(``tri_done``, ``tri_upto``), read once per transaction."""
        if self._tri is None:
            self._tri = _tri_state(self.conn)
        return self._tri

    def delete_paths(self, paths: Sequence[str]) -> None:
        self._delete(paths, keep_text=False)

    def _delete(self, paths: Sequence[str], *, keep_text: bool) -> None:
        rows = [(p,) for p in paths]
        if not rows:
            return
        c = self.conn
        c.executemany(
            "INSERT INTO fts(fts, rowid, names, pathwords, body) "
            "SELECT 'delete', id, names, pathwords, body FROM docs WHERE path=?",
            rows,
        )
        tables = ["files", "defs", "refs", "skipped", "docs"]
        if not keep_text:
            done, upto = self.tri_state
            c.executemany(
                "INSERT INTO tri(tri, rowid, text) "
                "SELECT 'delete', id, text FROM content WHERE path=? AND id <= ?",
                [(p, upto if not done else 1 << 62) for p in paths],
            )
            tables.append("content")
        for table in tables:
            c.executemany(f"DELETE FROM {table} WHERE path=?", rows)

    def _same_text(self, row: FileRow) -> bool:
        got = self.conn.execute(
            "SELECT f.hash FROM files f JOIN content c ON c.path = f.path WHERE f.path=?",
            (row.path,),
        ).fetchone()
        return got is not None and got[0] == row.hash

    def _insert(self, row: FileRow, text: str | None, parsed: bool) -> None:
        """The file row and (unless ``text`` is None: kept) its text and text-index entry."""
        c = self.conn
        c.execute(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row.path,
                row.size,
                row.mtime_ns,
                row.hash,
                row.language,
                row.lines,
                row.tokens,
                int(row.invalid_utf8),
                int(parsed),
            ),
        )
        if text is None:
            return
        cur = c.execute("INSERT INTO content(path, text) VALUES (?,?)", (row.path, text))
        if self.tri_state[0]:
            c.execute("INSERT INTO tri(rowid, text) VALUES (?,?)", (cur.lastrowid, text))

    def put_text(self, row: FileRow, text: str) -> None:
        if self._same_text(row):  # only the row changes; text, symbols and parsed stay
            self.conn.execute(
                "UPDATE files SET size=?, mtime_ns=?, language=?, lines=?, tokens=?, "
                "invalid_utf8=? WHERE path=?",
                (
                    row.size,
                    row.mtime_ns,
                    row.language,
                    row.lines,
                    row.tokens,
                    int(row.invalid_utf8),
                    row.path,
                ),
            )
            return
        # The old symbols stay (stale, the file listed as unparsed) until put_file
        # replaces them, and the old text's trigram entries stay as garbage (their
        # content id is gone, so they match nothing): a 10,000-file branch switch is
        # searchable without first deleting millions of symbol rows and re-tokenising
        # every old text. Past TRI_GARBAGE_SHARE the trigram index is rebuilt (flush).
        c = self.conn
        done, upto = self.tri_state
        old = c.execute("SELECT id FROM content WHERE path=?", (row.path,)).fetchone()
        if old is not None and (done or old[0] <= upto):
            self.tri_garbage += 1
        c.execute("DELETE FROM content WHERE path=?", (row.path,))
        c.execute("DELETE FROM files WHERE path=?", (row.path,))
        c.execute("DELETE FROM skipped WHERE path=?", (row.path,))
        self._insert(row, text, parsed=False)

    def put_file(
        self,
        row: FileRow,
        text: str,
        defs: Sequence[DefRow],
        refs: Sequence[RefRow],
        docs: Sequence[DocRow] | None = None,
    ) -> None:
        keep = self._same_text(row)
        self._delete([row.path], keep_text=keep)
        self._insert(row, None if keep else text, parsed=True)
        c = self.conn
        c.executemany("INSERT INTO defs VALUES (?,?,?,?,?,?,?,?)", defs)
        c.executemany("INSERT INTO refs VALUES (?,?,?,?)", refs)
        if docs is None:
            docs = doc_rows(row.path, text, row.lines, defs)
        c.executemany(
            "INSERT INTO docs(path, start_line, end_line, qualname, kind, signature, doc, "
            "names, pathwords, body) VALUES (?,?,?,?,?,?,?,?,?,?)",
            docs,
        )
        c.execute(
            "INSERT INTO fts(rowid, names, pathwords, body) "
            "SELECT id, names, pathwords, body FROM docs WHERE path=?",
            (row.path,),
        )

    def put_skipped(self, skip: SkippedFile, size: int, mtime_ns: int) -> None:
        self.delete_paths([skip.path])
        self.conn.execute(
            "INSERT INTO skipped VALUES (?,?,?,?,?)",
            (skip.path, size, mtime_ns, skip.reason, skip.detail),
        )

    def touch(self, path: str, mtime_ns: int) -> None:
        self.conn.execute("UPDATE files SET mtime_ns=? WHERE path=?", (mtime_ns, path))

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))


class SQLiteStore:
    """One repository's index in one SQLite file; thread- and process-safe.

    Each thread gets its own connection, closed when the thread ends (or at
    :meth:`close`), so connections never pile up in a server whose worker
    threads come and go.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexCorrupted(
                f"cannot create the cache directory {path.parent}: {exc.strerror or exc}"
            ) from None
        self._local = threading.local()
        self._conns: dict[int, sqlite3.Connection] = {}
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._writer_depth = 0
        self._closed = False
        self._init_schema()

    # -- IndexStore: identity -------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def own_path(self) -> Path | None:
        return self.path

    def reader_spec(self) -> tuple[str, str]:
        return (__name__, str(self.path))

    # -- connections ----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
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

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            thread = threading.current_thread()
            with self._conns_lock:
                self._reap_locked()
                stale = self._conns.pop(thread.ident or 0, None)
                if stale is not None:
                    stale.close()
                self._conns[thread.ident or 0] = conn
        return conn

    def _reap_locked(self) -> None:
        """Close the connections of threads that have ended."""
        alive = {t.ident for t in threading.enumerate()}
        for ident in [i for i in self._conns if i not in alive]:
            try:
                self._conns.pop(ident).close()
            except sqlite3.Error:
                pass

    def open_connections(self) -> int:
        with self._conns_lock:
            self._reap_locked()
            return len(self._conns)

    def _init_schema(self) -> None:
        try:
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            if isinstance(exc, sqlite3.OperationalError) and (
                "unable to open" in str(exc) or "readonly" in str(exc)
            ):
                raise IndexCorrupted(
                    f"cannot open the index cache {self.path}: {exc} (check the permissions "
                    "of the cache directory, or set RLM_CACHE_DIR)"
                ) from None
            log.warning("index cache %s is unreadable (%s): rebuilding it", self.path, exc)
            self._discard_file()
            self._create_schema()

    def _create_schema(self) -> None:
        conn = self._conn
        mode = _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        if mode and str(mode[0]).lower() != "wal":
            log.warning("SQLite index %s is not in WAL mode (%s)", self.path, mode[0])
        with self._transaction() as c:
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
            for name, target in _NAME_INDEXES.items():
                c.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
            c.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('tri_done', '1')")
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('tri_upto', '0')")

    def _discard_file(self) -> None:
        self.close()
        self._closed = False
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            try:
                if p.is_dir() and not p.is_symlink():
                    raise IndexCorrupted(
                        f"the index cache {p} is a directory, not a database: remove it"
                    )
                p.unlink(missing_ok=True)
            except OSError as exc:
                raise IndexCorrupted(
                    f"the index cache {p} is corrupt and cannot be removed: {exc.strerror or exc}"
                ) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._conn
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
            conns, self._conns = list(self._conns.values()), {}
        self._local = threading.local()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    # -- IndexStore: writes ---------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Exclusive across processes (``flock``) and threads; re-entrant in one thread."""
        with self._write_lock:
            if self._writer_depth:
                self._writer_depth += 1
                try:
                    yield
                finally:
                    self._writer_depth -= 1
                return
            lock_path = Path(str(self.path) + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._writer_depth = 1
                yield
            finally:
                self._writer_depth = 0
                os.close(fd)

    def check(self) -> str | None:
        """``None`` when SQLite's ``quick_check`` finds nothing wrong, else what it found.

        It reads every page (about a second per GiB), so callers run it off
        the request path.
        """
        try:
            rows = self._conn.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        return "; ".join(problems) or None

    def reset(self) -> None:
        """Start over with an empty store: the file is deleted and created anew."""
        with self._write_lock:
            self._discard_file()
            self._create_schema()

    @contextmanager
    def batch(self) -> Iterator[_Batch]:
        with self._transaction() as conn:
            b = _Batch(conn, bulk=False)
            yield b
            b.flush()

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Drop the name indexes for a cold load and build them once at the end.

        Keeping a B-tree index current row by row costs more than the rows
        themselves for the hundreds of thousands of references a cold load
        writes; building it afterwards is one sort. If the process dies in
        between, or the load is interrupted (an exception), the next open
        builds them: an interrupted load does not wait for minutes of sorting.
        """
        with self._transaction() as conn:
            for name in _NAME_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            if conn.execute("SELECT 1 FROM content LIMIT 1").fetchone() is None:
                # Into an empty store: the trigram index is built afterwards (index_texts).
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_done', '0')")
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_upto', '0')")
        yield
        with self._transaction() as conn:
            for name, target in _NAME_INDEXES.items():
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    def index_texts(self, max_files: int) -> bool:
        with self._transaction() as conn:
            done, upto = _tri_state(conn)
            if done:
                return True
            rows = conn.execute(
                "SELECT id, text FROM content WHERE id > ? ORDER BY id LIMIT ?",
                (upto, max(1, max_files)),
            ).fetchall()
            conn.executemany("INSERT INTO tri(rowid, text) VALUES (?,?)", rows)
            if rows:
                conn.execute("UPDATE meta SET value=? WHERE key='tri_upto'", (str(rows[-1][0]),))
            if len(rows) < max(1, max_files):
                conn.execute("UPDATE meta SET value='1' WHERE key='tri_done'")
                return True
            return False

    # -- IndexStore: reads ----------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def file_rows(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        rows = self._file_select(
            "path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8", paths
        )
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}

    def file_entries(self, paths: Sequence[str] | None = None) -> dict[str, FileEntry]:
        return file_entries(
            self._file_select("path, size, mtime_ns, language, lines, tokens, invalid_utf8", paths)
        )

    def _file_select(self, columns: str, paths: Sequence[str] | None) -> list[Any]:
        """``columns`` of every row of ``files``, or of the rows of ``paths``."""
        conn = self._conn
        if paths is None:
            return conn.execute(f"SELECT {columns} FROM files").fetchall()
        rows: list[Any] = []
        for i in range(0, len(paths), TEXT_BATCH):
            chunk = list(paths[i : i + TEXT_BATCH])
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT {columns} FROM files WHERE path IN ({marks})", chunk
            ).fetchall()
        return rows

    def skipped_rows(self) -> dict[str, SkipRow]:
        rows = self._conn.execute("SELECT path, size, mtime_ns, reason, detail FROM skipped")
        return {r[0]: SkipRow(r[1], r[2], SkippedFile(r[0], r[3], r[4])) for r in rows}

    def text(self, path: str) -> str | None:
        row = self._conn.execute("SELECT text FROM content WHERE path=?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def iter_texts(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        for i in range(0, len(paths), TEXT_BATCH):
            chunk = paths[i : i + TEXT_BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT path, text FROM content WHERE path IN ({marks})", chunk
            ).fetchall()
            yield from rows

    def symbol_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM defs").fetchone()[0])

    def unparsed_paths(self) -> list[str]:
        rows = self._conn.execute("SELECT path FROM files WHERE parsed=0 ORDER BY path")
        return [str(r[0]) for r in rows]

    def text_index_progress(self) -> tuple[int, int]:
        conn = self._conn
        done, upto = _tri_state(conn)
        total = int(conn.execute("SELECT count(*) FROM content").fetchone()[0])
        if done:
            return total, total
        indexed = conn.execute("SELECT count(*) FROM content WHERE id <= ?", (upto,)).fetchone()
        return int(indexed[0]), total

    def grep_candidates(self, alternatives: Sequence[Sequence[str]]) -> set[str] | None:
        try:
            match = _trigram_match(alternatives)
        except (ValueError, IndexError):
            return None
        conn = self._conn
        conn.execute("BEGIN")  # one snapshot for the state and both queries
        try:
            done, upto = _tri_state(conn)
            if not done and upto == 0:
                return None
            rows = conn.execute(
                "SELECT c.path FROM tri JOIN content c ON c.id = tri.rowid WHERE tri MATCH ?",
                (match,),
            ).fetchall()
            if not done:
                rows += conn.execute("SELECT path FROM content WHERE id > ?", (upto,)).fetchall()
        finally:
            conn.execute("COMMIT")
        return {str(r[0]) for r in rows}

    def find_defs(self, query: DefQuery) -> list[Definition]:
        mode, text = query.mode, query.text
        if mode == "exact":
            where, args = "(name = ? OR qualname = ?)", [text, text]
        elif mode == "prefix":
            low = text.lower()
            where, args = "lower(name) >= ? AND lower(name) < ?", [low, low + "\U0010ffff"]
        elif mode == "substring":
            where, args = "instr(lower(name), ?) > 0", [text.lower()]
        elif mode == "regex":
            where, args = "(name REGEXP ? OR qualname REGEXP ?)", [text, text]
        elif mode == "path":
            where, args = "path = ?", [text]
        else:
            where, args = "1 = 1", []
        params: list[object] = list(args)
        if query.kinds is not None:
            kinds = sorted(query.kinds)
            where += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        if query.path_regex is not None:
            where += " AND rematch(?, path)"
            params.append(query.path_regex)
        rows = self._conn.execute(
            f"SELECT {_DEF_COLUMNS} FROM defs WHERE {where} ORDER BY path, start_line LIMIT ?",
            (*params, query.limit),
        ).fetchall()
        return [Definition(*r) for r in rows]

    def refs(self, name: str, limit: int) -> list[Reference]:
        rows = self._conn.execute(
            "SELECT name, path, line, kind FROM refs WHERE name=? ORDER BY path, line LIMIT ?",
            (name, limit),
        ).fetchall()
        return [Reference(*r) for r in rows]

    def edges(self, max_defining_files: int = 8) -> list[tuple[str, str, int]]:
        rows = self._conn.execute(
            "WITH d AS (SELECT DISTINCT name, path FROM defs WHERE name IN "
            "(SELECT name FROM defs GROUP BY name HAVING count(DISTINCT path) <= ?)) "
            "SELECT r.path, d.path, count(*) FROM refs r JOIN d ON r.name = d.name "
            "WHERE r.path != d.path GROUP BY r.path, d.path",
            (max_defining_files,),
        ).fetchall()
        return [(str(a), str(b), int(w)) for a, b, w in rows]

    def file_graph(self, max_defining_files: int = 8, max_out: int = 64) -> FileGraph:
        conn = self._conn
        src, dst, weight = array("i"), array("i"), array("q")
        # The aggregate sorts every cross-file use: on disk, so memory stays bounded.
        conn.execute("PRAGMA temp_store=FILE")
        conn.execute("BEGIN")  # one snapshot: the ids index the paths read first
        try:
            paths = [str(p) for (p,) in conn.execute("SELECT path FROM files ORDER BY path")]
            cur = conn.execute(
                "WITH f AS MATERIALIZED (SELECT path, row_number() OVER (ORDER BY path) - 1 "
                "AS id FROM files), "
                "n AS (SELECT name FROM defs GROUP BY name HAVING count(DISTINCT path) <= ?), "
                "d AS MATERIALIZED (SELECT DISTINCT defs.name AS name, f.id AS id FROM defs "
                "JOIN n ON n.name = defs.name JOIN f ON f.path = defs.path), "
                # refs in table order (CROSS JOIN keeps it outermost), not by name: one
                # sequential scan instead of a random row read per use (54 s -> 45 s at 10M).
                "e AS (SELECT f.id AS src, d.id AS dst, count(*) AS w FROM refs r "
                "CROSS JOIN f CROSS JOIN d WHERE f.path = r.path AND d.name = r.name "
                "AND f.id != d.id GROUP BY f.id, d.id), "
                "k AS (SELECT src, dst, w, "
                "row_number() OVER (PARTITION BY src ORDER BY w DESC, dst) AS rk FROM e) "
                "SELECT src, dst, w FROM k WHERE rk <= ? ORDER BY src, dst",
                (max_defining_files, max_out),
            )
            while rows := cur.fetchmany(10_000):  # streamed into arrays, never a list
                for a, b, w in rows:
                    src.append(a)
                    dst.append(b)
                    weight.append(w)
        finally:
            conn.execute("COMMIT")
            conn.execute("PRAGMA temp_store=MEMORY")
        return FileGraph(paths, src, dst, weight)

    def ref_counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        if names is None:
            rows = self._conn.execute("SELECT name, count(*) FROM refs GROUP BY name").fetchall()
        else:
            rows = []
            for i in range(0, len(names), TEXT_BATCH):
                chunk = list(names[i : i + TEXT_BATCH])
                rows += self._conn.execute(
                    f"SELECT name, count(*) FROM refs WHERE name IN ({','.join('?' * len(chunk))}) "
                    "GROUP BY name",
                    chunk,
                ).fetchall()
        return {str(n): int(c) for n, c in rows}

    def text_search(
        self, terms: Sequence[str], limit: int, path_regex: str | None = None
    ) -> list[TextHit]:
        words = [t for t in terms if t.isalnum()]
        if not words or limit <= 0:
            return []
        phrases = [f'"{w}"' for w in dict.fromkeys(words)]
        conn = self._conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")  # one snapshot for the statistics and every pass
        try:
            ranked = _top_k(conn, phrases, limit, path_regex)
            if not ranked:
                return []
            ids = [rowid for _, rowid in ranked]
            rows = {
                r[0]: r[1:]
                for r in conn.execute(
                    "SELECT id, path, start_line, end_line, qualname, kind, signature, doc "
                    f"FROM docs WHERE id IN ({','.join('?' * len(ids))})",
                    ids,
                )
            }
        finally:
            if own:
                conn.execute("COMMIT")
        hits: list[TextHit] = []
        for score, rowid in ranked:
            r = rows.get(rowid)
            if r is not None:
                hits.append(TextHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], -float(score)))
        return hits


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
    top = conn.execute("SELECT max(id) FROM docs").fetchone()[0]
    n_rows = max(n_rows, int(top or 0))  # a larger total only loosens the bound
    out: list[float] = []
    for p in phrases:
        hits = int(conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (p,)).fetchone()[0])
        if hits == 0:
            out.append(0.0)
            continue
        idf = math.log((n_rows - hits + 0.5) / (hits + 0.5))
        out.append(max(idf, 1e-6) * (_K1 + 1.0) * (1.0 + 1e-9) + 1e-9)
    return out


def _top_k(
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
                f"SELECT {_BM25} AS score, fts.rowid FROM fts JOIN docs d ON d.id = fts.rowid "
                "WHERE fts MATCH ? AND rematch(?, d.path) ORDER BY score, fts.rowid LIMIT ?"
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
