"""Writes to the SQLite index: one :class:`Batch` per ``BEGIN IMMEDIATE`` transaction.

A replaced text's trigram entries are left behind as garbage (their content
id is gone, so they match nothing) rather than deleted row by row; past
:data:`TRI_GARBAGE_SHARE` of the texts the trigram index starts over and is
filled again in steps (:meth:`~rlm_mcp.index.store.sqlite.SQLiteStore.index_texts`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from rlm_mcp.index.model import DefRow, FileRow, RefRow, SkippedFile
from rlm_mcp.index.search.ranking import DocRow, doc_rows
from rlm_mcp.index.store.sqlite.schema import (
    MAX_ROWS_PER_FILE,
    ROW_BITS,
    deflate,
    inflate,
    tri_state,
)

__all__ = ["TRI_GARBAGE_MIN", "TRI_GARBAGE_SHARE", "Batch"]

log = logging.getLogger(__name__)

TRI_GARBAGE_MIN = 20_000
TRI_GARBAGE_SHARE = 0.3
"""Replaced texts whose trigram entries linger before the trigram index is rebuilt."""


def _rows_of(fid: int) -> tuple[int, int]:
    """The key range of file ``fid``'s definitions and references: ``lo < id <= hi``
    (``lo`` itself is the file's own ranked-search row)."""
    lo = fid << ROW_BITS
    return lo, lo + MAX_ROWS_PER_FILE


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
        for path in paths:
            got = self._file(path)
            if got is not None:
                self._delete(got, path, keep_text=False)
        self.conn.executemany("DELETE FROM skipped WHERE path=?", [(p,) for p in paths])

    def _file(self, path: str) -> tuple[int, int, int] | None:
        """(id, lines, ranked) of the stored file ``path``."""
        row = self.conn.execute(
            "SELECT id, lines, ranked FROM files WHERE path=?", (path,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def _stored_text(self, fid: int) -> str | None:
        row = self.conn.execute("SELECT text FROM content WHERE file=?", (fid,)).fetchone()
        return None if row is None else inflate(row[0])

    def _unrank(self, fid: int, path: str, lines: int) -> None:
        """Take the file's rows out of the contentless ``fts``: FTS5 needs the very words it
        was given, so they are derived again from the stored text and definitions, as the
        parser derived them (:func:`~rlm_mcp.index.search.ranking.doc_rows`)."""
        c = self.conn
        text = self._stored_text(fid)
        if text is None:
            raise RuntimeError(f"index: the ranked rows of {path!r} outlived its text")
        lo, hi = _rows_of(fid)
        rows = c.execute(
            "SELECT id, name, qualname, kind, start_line, end_line, signature, doc FROM defs "
            "WHERE id > ? AND id <= ? ORDER BY id",
            (lo, hi),
        ).fetchall()
        defs = [(r[1], r[2], r[3], path, r[4], r[5], r[6], r[7]) for r in rows]
        ids = [lo] + [int(r[0]) for r in rows]
        docs = doc_rows(path, text, lines, defs)
        c.executemany(
            "INSERT INTO fts(fts, rowid, names, pathwords, body) VALUES ('delete', ?, ?, ?, ?)",
            [(i, d[7], d[8], d[9]) for i, d in zip(ids, docs, strict=True)],
        )
        c.execute("UPDATE files SET ranked=0 WHERE id=?", (fid,))

    def _delete(self, got: tuple[int, int, int], path: str, *, keep_text: bool) -> None:
        """Everything stored for file ``got`` (see :meth:`_file`) at ``path``; with
        ``keep_text``, its row, text and trigram entries stay (the caller replaces the row)."""
        fid, lines, is_ranked = got
        c = self.conn
        if is_ranked:
            self._unrank(fid, path, lines)
        lo, hi = _rows_of(fid)
        c.execute("DELETE FROM defs WHERE id > ? AND id <= ?", (lo, hi))
        c.execute("DELETE FROM refs WHERE id > ? AND id <= ?", (lo, hi))
        if keep_text:
            return
        self._drop_text(fid)
        c.execute("DELETE FROM files WHERE id=?", (fid,))

    def _drop_text(self, fid: int) -> None:
        """The file's text; its trigram entries go with it while the index holds it whole,
        and linger as garbage otherwise (see :meth:`put_text`)."""
        c = self.conn
        done, upto = self.tri_state
        got = c.execute("SELECT id, text FROM content WHERE file=?", (fid,)).fetchone()
        if got is None:
            return
        if done or got[0] <= upto:
            c.execute(
                "INSERT INTO tri(tri, rowid, text) VALUES ('delete', ?, ?)",
                (got[0], inflate(got[1])),
            )
        c.execute("DELETE FROM content WHERE id=?", (got[0],))

    def _same_text(self, row: FileRow) -> tuple[int, int, int] | None:
        """The stored file (see :meth:`_file`) when its text is stored and has ``row.hash``."""
        got = self.conn.execute(
            "SELECT f.id, f.lines, f.ranked, f.hash FROM files f "
            "JOIN content c ON c.file = f.id WHERE f.path=?",
            (row.path,),
        ).fetchone()
        if got is None or got[3] != row.hash:
            return None
        return int(got[0]), int(got[1]), int(got[2])

    def _write_row(self, row: FileRow, fid: int | None, parsed: bool) -> int:
        """Insert the file's row, or replace the one of id ``fid`` in place (its id stays)."""
        values = (
            row.size,
            row.mtime_ns,
            row.hash,
            row.language,
            row.lines,
            row.tokens,
            int(row.invalid_utf8),
            int(parsed),
        )
        c = self.conn
        if fid is None:
            cur = c.execute(
                "INSERT INTO files(path, size, mtime_ns, hash, language, lines, tokens, "
                "invalid_utf8, parsed) VALUES (?,?,?,?,?,?,?,?,?)",
                (row.path, *values),
            )
            return int(cur.lastrowid or 0)
        c.execute(
            "UPDATE files SET size=?, mtime_ns=?, hash=?, language=?, lines=?, tokens=?, "
            "invalid_utf8=?, parsed=? WHERE id=?",
            (*values, fid),
        )
        return fid

    def _put_content(self, fid: int, text: str) -> None:
        """The file's text, and its trigram entry while the trigram index is whole."""
        cur = self.conn.execute(
            "INSERT INTO content(file, text) VALUES (?,?)", (fid, deflate(text))
        )
        if self.tri_state[0]:
            self.conn.execute("INSERT INTO tri(rowid, text) VALUES (?,?)", (cur.lastrowid, text))

    def put_text(self, row: FileRow, text: str) -> None:
        same = self._same_text(row)
        c = self.conn
        if same is not None:  # only the row changes; text, symbols and parsed stay
            c.execute(
                "UPDATE files SET size=?, mtime_ns=?, language=?, lines=?, tokens=?, "
                "invalid_utf8=? WHERE id=?",
                (
                    row.size,
                    row.mtime_ns,
                    row.language,
                    row.lines,
                    row.tokens,
                    int(row.invalid_utf8),
                    same[0],
                ),
            )
            return
        # The old symbols stay (stale, the file listed as unparsed) until put_file
        # replaces them, and the old text's trigram entries stay as garbage (their
        # content id is gone, so they match nothing): a 10,000-file branch switch is
        # searchable without first deleting millions of symbol rows and re-tokenising
        # every old text. Past TRI_GARBAGE_SHARE the trigram index is rebuilt (flush).
        # The ranked rows go now, while the text they were derived from is here.
        c.execute("DELETE FROM skipped WHERE path=?", (row.path,))
        got = self._file(row.path)
        fid = None
        if got is not None:
            fid = got[0]
            if got[2]:
                self._unrank(fid, row.path, got[1])
            done, upto = self.tri_state
            old = c.execute("SELECT id FROM content WHERE file=?", (fid,)).fetchone()
            if old is not None and (done or old[0] <= upto):
                self.tri_garbage += 1
            c.execute("DELETE FROM content WHERE file=?", (fid,))
        fid = self._write_row(row, fid, parsed=False)
        self._put_content(fid, text)

    def put_file(
        self,
        row: FileRow,
        text: str,
        defs: Sequence[DefRow],
        refs: Sequence[RefRow],
        docs: Sequence[DocRow] | None = None,
    ) -> None:
        c = self.conn
        same = self._same_text(row)
        if same is not None:
            self._delete(same, row.path, keep_text=True)
            fid = self._write_row(row, same[0], parsed=True)
        else:
            got = self._file(row.path)
            if got is not None:
                self._delete(got, row.path, keep_text=False)
            c.execute("DELETE FROM skipped WHERE path=?", (row.path,))
            fid = self._write_row(row, None, parsed=True)
            self._put_content(fid, text)
        if len(defs) > MAX_ROWS_PER_FILE or len(refs) > MAX_ROWS_PER_FILE:
            log.warning("%s: only the first %d definitions and references are kept",
                        row.path, MAX_ROWS_PER_FILE)  # fmt: skip
            defs, refs = defs[:MAX_ROWS_PER_FILE], refs[:MAX_ROWS_PER_FILE]
            docs = None
        base = fid << ROW_BITS
        c.executemany(
            "INSERT INTO defs VALUES (?,?,?,?,?,?,?,?)",
            [(base + n, d[0], d[1], d[2], d[4], d[5], d[6], d[7]) for n, d in enumerate(defs, 1)],
        )
        c.executemany(
            "INSERT INTO refs VALUES (?,?,?,?)",
            [(base + n, r[0], r[2], r[3]) for n, r in enumerate(refs, 1)],
        )
        if docs is None:
            docs = doc_rows(row.path, text, row.lines, defs)
        if not docs:
            return
        if len(docs) != len(defs) + 1:
            raise ValueError(f"{row.path}: {len(docs)} ranked rows for {len(defs)} definitions")
        c.executemany(
            "INSERT INTO fts(rowid, names, pathwords, body) VALUES (?,?,?,?)",
            [(base + n, d[7], d[8], d[9]) for n, d in enumerate(docs)],
        )
        c.execute("UPDATE files SET ranked=1 WHERE id=?", (fid,))

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
