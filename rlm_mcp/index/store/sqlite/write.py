"""Writes to the SQLite index: one :class:`Batch` per ``BEGIN IMMEDIATE`` transaction.

A replaced text's trigram entries are left behind as garbage (their content
id is gone, so they match nothing) rather than deleted row by row; past
:data:`TRI_GARBAGE_SHARE` of the texts the trigram index starts over and is
filled again in steps (:meth:`~rlm_mcp.index.store.sqlite.SQLiteStore.index_texts`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from rlm_mcp.index.model import DefRow, FileRow, RefRow, SkippedFile
from rlm_mcp.index.search.ranking import DocRow, doc_rows
from rlm_mcp.index.store.sqlite.schema import tri_state

__all__ = ["TRI_GARBAGE_MIN", "TRI_GARBAGE_SHARE", "Batch"]

TRI_GARBAGE_MIN = 20_000
TRI_GARBAGE_SHARE = 0.3
"""Replaced texts whose trigram entries linger before the trigram index is rebuilt."""


class Batch:
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
            self._tri = tri_state(self.conn)
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
