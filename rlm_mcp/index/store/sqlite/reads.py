"""The reads of the SQLite index: :class:`Reads`, the query side of
:class:`~rlm_mcp.index.store.sqlite.SQLiteStore`, and the trigram query grep's
prefilter runs (:func:`trigram_match`)."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from typing import Any

import rlm_mcp.index.store.sqlite.ranked as ranked
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
from rlm_mcp.index.store.common import (
    ENTRY_COLUMNS,
    FILE_COLUMNS,
    TEXT_BATCH,
    file_rows,
)
from rlm_mcp.index.store.sqlite.schema import MAX_ROWS_PER_FILE, ROW_BITS, inflate, tri_state

__all__ = ["TRIGRAMS_PER_LITERAL", "Reads", "trigram_match"]

_DEF_SELECT = "d.name, d.qualname, d.kind, f.path, d.start_line, d.end_line, d.signature, d.doc"
"""The columns of a :class:`~rlm_mcp.index.model.Definition` (``DEF_COLUMNS``) over
``defs d`` joined to ``files f``."""

TRIGRAMS_PER_LITERAL = 12


def trigram_match(alternatives: Sequence[Sequence[str]]) -> str:
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


class Reads:
    """The :class:`~rlm_mcp.index.store.base.IndexStore` reads, each on the calling thread's connection."""

    @property
    def _conn(self) -> sqlite3.Connection:
        """The calling thread's connection (the store's)."""
        raise NotImplementedError

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def file_rows(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        return file_rows(self._file_select(FILE_COLUMNS, paths))

    def file_entries(self, paths: Sequence[str] | None = None) -> dict[str, FileEntry]:
        return file_entries(self._file_select(ENTRY_COLUMNS, paths))

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
        row = self._conn.execute(
            "SELECT c.text FROM content c JOIN files f ON f.id = c.file WHERE f.path=?", (path,)
        ).fetchone()
        return None if row is None else inflate(row[0])

    def symbol_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM defs").fetchone()[0])

    def unparsed_paths(self) -> list[str]:
        rows = self._conn.execute("SELECT path FROM files WHERE parsed=0 ORDER BY path")
        return [str(r[0]) for r in rows]

    def text_index_progress(self) -> tuple[int, int]:
        conn = self._conn
        done, upto = tri_state(conn)
        total = int(conn.execute("SELECT count(*) FROM content").fetchone()[0])
        if done:
            return total, total
        indexed = conn.execute("SELECT count(*) FROM content WHERE id <= ?", (upto,)).fetchone()
        return int(indexed[0]), total

    def grep_candidates(self, alternatives: Sequence[Sequence[str]]) -> set[str] | None:
        try:
            match = trigram_match(alternatives)
        except (ValueError, IndexError):
            return None
        conn = self._conn
        conn.execute("BEGIN")  # one snapshot for the state and both queries
        try:
            done, upto = tri_state(conn)
            if not done and upto == 0:
                return None
            rows = conn.execute(
                "SELECT f.path FROM tri JOIN content c ON c.id = tri.rowid "
                "JOIN files f ON f.id = c.file WHERE tri MATCH ?",
                (match,),
            ).fetchall()
            if not done:
                rows += conn.execute(
                    "SELECT f.path FROM content c JOIN files f ON f.id = c.file WHERE c.id > ?",
                    (upto,),
                ).fetchall()
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
            # The file's own range of the table's key: ``d.id >> ROW_BITS = f.id`` alone
            # scans every definition (a second and a half per file at monorepo scale).
            fid = "(SELECT id FROM files WHERE path = ?)"
            where = (
                f"d.id BETWEEN {fid} << {ROW_BITS} AND ({fid} << {ROW_BITS}) | {MAX_ROWS_PER_FILE}"
            )
            args = [text, text]  # the range is the file's: no test of f.path is needed
        else:
            where, args = "1 = 1", []
        params: list[object] = list(args)
        if query.kinds is not None:
            kinds = sorted(query.kinds)
            where += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        if query.path_regex is not None:
            where += " AND rematch(?, f.path)"
            params.append(query.path_regex)
        rows = self._conn.execute(
            f"SELECT {_DEF_SELECT} FROM defs d JOIN files f ON f.id = d.id >> {ROW_BITS} "
            f"WHERE {where} ORDER BY f.path, d.start_line LIMIT ?",
            (*params, query.limit),
        ).fetchall()
        return [Definition(*r) for r in rows]

    def refs(self, name: str, limit: int) -> list[Reference]:
        rows = self._conn.execute(
            f"SELECT r.name, f.path, r.line, r.kind FROM refs r JOIN files f "
            f"ON f.id = r.id >> {ROW_BITS} WHERE r.name=? ORDER BY f.path, r.line LIMIT ?",
            (name, limit),
        ).fetchall()
        return [Reference(*r) for r in rows]

    def edges(self, max_defining_files: int = 8) -> list[tuple[str, str, int]]:
        rows = self._conn.execute(
            f"WITH d AS (SELECT DISTINCT name, id >> {ROW_BITS} AS file FROM defs WHERE name IN "
            f"(SELECT name FROM defs GROUP BY name HAVING count(DISTINCT id >> {ROW_BITS}) <= ?)), "
            f"e AS (SELECT r.id >> {ROW_BITS} AS src, d.file AS dst, count(*) AS w FROM refs r "
            f"JOIN d ON r.name = d.name WHERE r.id >> {ROW_BITS} != d.file GROUP BY 1, 2) "
            "SELECT a.path, b.path, e.w FROM e JOIN files a ON a.id = e.src "
            "JOIN files b ON b.id = e.dst",
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
                "WITH f AS MATERIALIZED (SELECT id AS fid, row_number() OVER (ORDER BY path) - 1 "
                "AS id FROM files), "
                f"n AS (SELECT name FROM defs GROUP BY name HAVING count(DISTINCT id >> {ROW_BITS}) "
                "<= ?), "
                "d AS MATERIALIZED (SELECT DISTINCT defs.name AS name, f.id AS id FROM defs "
                f"JOIN n ON n.name = defs.name JOIN f ON f.fid = defs.id >> {ROW_BITS}), "
                # refs in table order (CROSS JOIN keeps it outermost), not by name: one
                # sequential scan instead of a random row read per use (54 s -> 45 s at 10M).
                "e AS (SELECT f.id AS src, d.id AS dst, count(*) AS w FROM refs r "
                f"CROSS JOIN f CROSS JOIN d WHERE f.fid = r.id >> {ROW_BITS} AND d.name = r.name "
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
        return ranked.text_search(self._conn, terms, limit, path_regex)
