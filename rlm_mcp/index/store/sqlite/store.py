"""The SQLite store itself: :class:`SQLiteStore` (a connection per thread, the schema on
open, the writer lock and transactions), and the reader its ``reader_spec`` names for the
grep helper process (:func:`open_text_reader`).

The queries are in :mod:`~rlm_mcp.index.store.sqlite.reads`, a batch's writes in
:mod:`~rlm_mcp.index.store.sqlite.write`; the package docstring tells how the index is laid out.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from rlm_mcp.errors import IndexCorrupted
from rlm_mcp.index.store.common import TEXT_BATCH, WriterHold
from rlm_mcp.index.store.sqlite.reads import Reads
from rlm_mcp.index.store.sqlite.schema import (
    BUSY_TIMEOUT_MS,
    NAME_INDEXES,
    connect,
    create_tables,
    inflate,
    retry_locked,
    tri_state,
)
from rlm_mcp.index.store.sqlite.write import Batch

__all__ = ["SQLiteStore", "TextReader", "open_text_reader"]

log = logging.getLogger(__name__)


class TextReader:
    """Read-only access to file texts, for a helper process (see ``grepworker``)."""

    def __init__(self, db: str) -> None:
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(paths), TEXT_BATCH):
            chunk = list(paths[i : i + TEXT_BATCH])
            marks = ",".join("?" * len(chunk))
            for path, blob in self._conn.execute(
                f"SELECT f.path, c.text FROM files f JOIN content c ON c.file = f.id "
                f"WHERE f.path IN ({marks})",
                chunk,
            ):
                out[path] = inflate(blob)
        return out

    def close(self) -> None:
        self._conn.close()


def open_text_reader(arg: str) -> TextReader:
    """The reader :meth:`SQLiteStore.reader_spec` names: ``arg`` is the database path."""
    return TextReader(arg)


class SQLiteStore(Reads):
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
        self._writer = WriterHold(self._write_lock)
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

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
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
        mode = retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        if mode and str(mode[0]).lower() != "wal":
            log.warning("SQLite index %s is not in WAL mode (%s)", self.path, mode[0])
        with self._transaction() as c:
            create_tables(c)

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
        """Close this thread's connection and those of ended threads; drop the others.

        A connection another live thread holds is never closed from here:
        closing one under a query running on its thread frees SQLite's
        statement while that thread steps it (a segfault, seen when a repo
        map's background write met the CLI's exit). Dropping the store's
        references closes an idle one at once and a busy one when its query
        lets go of it; the store refuses new work either way.
        """
        self._closed = True
        me = threading.get_ident()
        alive = {t.ident for t in threading.enumerate()}
        with self._conns_lock:
            conns, self._conns = self._conns, {}
        self._local = threading.local()
        for ident, conn in conns.items():
            if ident == me or ident not in alive:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass

    # -- IndexStore: writes ---------------------------------------------------------

    def writer(self) -> AbstractContextManager[None]:
        """Exclusive across processes (``flock``) and threads; re-entrant in one thread."""
        return self._writer.hold(self._flock)

    @contextmanager
    def _flock(self) -> Iterator[None]:
        """The cross-process half of :meth:`writer`: ``flock`` on ``<db>.lock``."""
        lock_path = Path(str(self.path) + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
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
    def batch(self) -> Iterator[Batch]:
        with self._transaction() as conn:
            b = Batch(conn, bulk=False)
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
            for name in NAME_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            if conn.execute("SELECT 1 FROM content LIMIT 1").fetchone() is None:
                # Into an empty store: the trigram index is built afterwards (index_texts).
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_done', '0')")
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tri_upto', '0')")
        yield
        with self._transaction() as conn:
            for name, target in NAME_INDEXES.items():
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    def index_texts(self, max_files: int) -> bool:
        with self._transaction() as conn:
            done, upto = tri_state(conn)
            if done:
                return True
            rows = conn.execute(
                "SELECT id, text FROM content WHERE id > ? ORDER BY id LIMIT ?",
                (upto, max(1, max_files)),
            ).fetchall()
            conn.executemany(
                "INSERT INTO tri(rowid, text) VALUES (?,?)", [(i, inflate(t)) for i, t in rows]
            )
            if rows:
                conn.execute("UPDATE meta SET value=? WHERE key='tri_upto'", (str(rows[-1][0]),))
            if len(rows) < max(1, max_files):
                conn.execute("UPDATE meta SET value='1' WHERE key='tri_done'")
                return True
            return False
