"""Writes to the PostgreSQL index: one :class:`Batch` per transaction.

Writes are buffered per path and sent with ``COPY`` when the batch ends, after
one keyed delete per table of the paths they replace; the ranked-search words
are computed on a helper thread meanwhile (SQLite's tokenizer releases the GIL).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from rlm_mcp.index.model import DefRow, FileRow, RefRow, SkippedFile
from rlm_mcp.index.search.ranking import DocRow, doc_rows
from rlm_mcp.index.store.common import DEF_COLUMNS
from rlm_mcp.index.store.postgres.schema import PER_PATH_ALL
from rlm_mcp.index.store.postgres.words import TOKENS

__all__ = ["Batch", "Pending"]


@dataclass(slots=True)
class Pending:
    """One path's buffered write: a parsed file, a text still to parse, or a skip."""

    kind: str
    row: FileRow | None = None
    text: str = ""
    defs: Sequence[DefRow] = ()
    refs: Sequence[RefRow] = ()
    docs: Sequence[DocRow] = ()
    skip: tuple[Any, ...] = ()


class Batch:
    """The writes of one transaction (:class:`~rlm_mcp.index.store.base.StoreBatch`).

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
        self._pending: dict[str, Pending] = {}
        self.changed = False
        """Whether a file was stored or removed (an mtime or metadata alone does not count)."""

    # -- StoreBatch ---------------------------------------------------------------

    def delete_paths(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        self.flush()
        if self._delete(sorted(set(paths)), PER_PATH_ALL) or self._shadow(sorted(set(paths))):
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
        self._add(row.path, Pending("file", row, text, defs, refs, docs))

    def put_text(self, row: FileRow, text: str) -> None:
        self._add(row.path, Pending("text", row, text))

    def put_skipped(self, skip: SkippedFile, size: int, mtime_ns: int) -> None:
        self._add(skip.path, Pending("skip", skip=(size, mtime_ns, skip.reason, skip.detail)))

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

    def _add(self, path: str, item: Pending) -> None:
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

        def same(path: str, e: Pending) -> bool:
            return e.row is not None and stored.get(path) == e.row.hash

        row_only = {p: e for p, e in pending.items() if e.kind == "text" and same(p, e)}
        keep_text = {p for p, e in pending.items() if e.kind == "file" and same(p, e)}
        if len(row_only) < len(pending):
            self.changed = True  # a row alone (same text, new mtime) is no news to readers
        # A path stored under neither files nor skipped has no rows anywhere (every
        # write of a path stores one of them): a cold load deletes nothing.
        replaced = present - set(row_only) - keep_text
        self._delete(sorted(replaced), PER_PATH_ALL)
        self._delete(sorted(keep_text), [t for t in PER_PATH_ALL if t != "rlm_content"])
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
            if "\x00" in e.text:
                # A NUL past the binary sniff can reach a signature or docstring.
                defs.extend((r, *_no_nul(d)) for d in e.defs)
                docs.extend(_no_nul(d) for d in e.docs)
            else:
                defs.extend((r, *d) for d in e.defs)
                docs.extend(e.docs)
            refs.extend((r, *x) for x in e.refs)
        # Words for ranked search come from SQLite's tokenizer, which releases the
        # GIL: it runs on a helper thread while the other tables are sent.
        words: list[list[tuple[list[str], list[int], int]]] = []
        rows3 = [(d[7], d[8], d[9]) for d in docs]
        helper = threading.Thread(
            target=lambda: words.append(TOKENS.docs(rows3)), name="rlm-pg-words", daemon=True
        )
        if docs:
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
            self._copy("rlm_defs", f"repo_id, {DEF_COLUMNS}", defs)
            self._copy("rlm_refs", "repo_id, name, path, line, kind", refs)
        finally:
            if docs:
                helper.join()
        if docs:
            if not words:
                raise RuntimeError("tokenizing the ranked-search rows failed")
            self._copy_docs(docs, words[0])

    def _copy_docs(
        self, docs: list[DocRow], tokens: list[tuple[list[str], list[int], int]]
    ) -> None:
        """The ranked-search rows, each with its terms and their column-weighted counts."""
        ids = sorted(
            int(i)
            for (i,) in self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence('rlm_docs', 'id')) "
                "FROM generate_series(1, %s)",
                (len(docs),),
            ).fetchall()
        )
        r = self.repo
        doc_out = [
            (doc_id, r, d[0], d[1], d[2], d[3], d[4], d[5], d[6], ntok, terms, ws)
            for doc_id, d, (terms, ws, ntok) in zip(ids, docs, tokens, strict=True)
        ]
        self._copy(
            "rlm_docs",
            "id, repo_id, path, start_line, end_line, qualname, kind, signature, doc, ntok, "
            "terms, ws",
            doc_out,
            (
                "int8",
                "int8",
                "text",
                "int4",
                "int4",
                "text",
                "text",
                "text",
                "text",
                "int4",
                "text[]",
                "int4[]",
            ),
        )


def _no_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with NULs in its strings shown as U+FFFD (PostgreSQL text holds no NUL)."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)
