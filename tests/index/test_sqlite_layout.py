"""The SQLite index stores no text twice (schema 6), and every way a file changes ends
with exactly the rows a clean load of the same tree writes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
from rlm_mcp.index.model import DefQuery
from rlm_mcp.index.store.sqlite import SQLiteStore, db_path_for
from tests.index.index_helpers import make_tree, snapshot


def _clean(root: Path, cache: Path) -> dict[str, list[tuple[object, ...]]]:
    with load(root, IndexSettings(cache_dir=cache, watch=False)):
        pass
    return snapshot(db_path_for(cache, root.resolve()))


def test_a_path_is_stored_once_and_texts_are_compressed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", files=40)
    cache = tmp_path / "cache"
    with load(root, IndexSettings(cache_dir=cache, watch=False)) as repo:
        assert repo.text("pkg3/mod3.py") == (root / "pkg3/mod3.py").read_text()
        assert [d.path for d in repo.symbols("func_3_4")] == ["pkg3/mod3.py"]
        assert repo.search("Thing3")[0].path == "pkg3/mod3.py"
    with sqlite3.connect(db_path_for(cache, root.resolve())) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        with_paths = sorted(
            t
            for t in tables
            if any(c[1] == "path" for c in conn.execute(f"PRAGMA table_info('{t}')"))
        )
        assert with_paths == ["files", "skipped"]
        assert "docs" not in tables  # schema 5's copy of every definition
        stored, raw = conn.execute(
            "SELECT sum(length(c.text)), sum(f.size) FROM content c JOIN files f ON f.id = c.file"
        ).fetchone()
    assert stored < raw / 2


def test_every_kind_of_change_ends_with_the_rows_of_a_clean_load(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", files=60)
    cache = tmp_path / "cache"
    settings = IndexSettings(cache_dir=cache, watch=False)
    with load(root, settings):
        pass
    # A body edit, a touched file with the same text, a deletion, a file that
    # becomes binary (skipped), a new file, and a skipped file that becomes text.
    edited = root / "pkg1/mod1.py"
    edited.write_text(
        edited.read_text().replace("Compute part", "Derive piece") + "def extra(): pass\n"
    )
    touched = root / "pkg2/mod2.py"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    (root / "pkg3/mod3.py").unlink()
    (root / "pkg4/mod4.py").write_bytes(b"\0\1binary now" * 10)
    (root / "pkg5/new.py").write_text('def brand_new():\n    """A new function."""\n')
    (root / "blob.bin").write_text("# now text\nvalue = 1\n")
    with load(root, settings) as repo:
        assert [d.path for d in repo.symbols("extra")] == ["pkg1/mod1.py"]
        assert repo.search("derive piece")[0].path == "pkg1/mod1.py"
        assert repo.symbols("func_3_0") == []
    # Back again: the edit reverted, the deleted file restored.
    edited.write_text(make_tree(tmp_path / "fresh", files=60).joinpath("pkg1/mod1.py").read_text())
    (root / "pkg3/mod3.py").write_text((tmp_path / "fresh/pkg3/mod3.py").read_text())
    with load(root, settings):
        pass
    assert snapshot(db_path_for(cache, root.resolve())) == _clean(root, tmp_path / "clean")


def test_a_schema_5_cache_is_rebuilt_without_its_old_tables(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", files=10)
    cache = tmp_path / "cache"
    db = db_path_for(cache, root.resolve())
    cache.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '5')")
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, path TEXT, body TEXT)")
        conn.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER)")
        conn.execute("INSERT INTO docs VALUES (1, 'gone.py', 'stale')")
    with load(root, IndexSettings(cache_dir=cache, watch=False)) as repo:
        assert repo.report.files == 10 and repo.report.reused == 0
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "docs" not in tables
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            "6",
        )
    assert snapshot(db) == _clean(root, tmp_path / "clean")


def test_a_files_definitions_are_read_by_its_key_range_not_a_scan(tmp_path: Path) -> None:
    """An outline reads one file's rows: the plan of the very statement run searches
    ``defs`` by its key (scanning it took 1.5 s a file at monorepo scale)."""
    root = make_tree(tmp_path / "repo", files=40)
    with load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        store = repo.store
        assert isinstance(store, SQLiteStore)
        conn = store._conn  # the calling thread's own connection
        run: list[str] = []
        conn.set_trace_callback(run.append)
        try:
            names = {d.name for d in repo.store.find_defs(DefQuery("path", "pkg3/mod3.py"))}
        finally:
            conn.set_trace_callback(None)
        assert "func_3_4" in names
        assert {d.path for d in repo.searcher.outline("pkg3/mod3.py")} == {"pkg3/mod3.py"}
        (sql,) = [s for s in run if "FROM defs" in s]
        plan = " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert "SEARCH d USING INTEGER PRIMARY KEY" in plan, plan
    assert "SCAN d" not in plan, plan
