"""Every IndexStore implementation passes these; a new store adds its factory to STORES."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_mcp.index.model import Definition, Reference, SkippedFile
from rlm_mcp.index.storage import DefQuery, FileRow, IndexStore
from rlm_mcp.index.store import SQLiteStore
from tests.pg_cluster import postgres_store

StoreFactory = Callable[[Path], IndexStore]
STORES: dict[str, StoreFactory] = {
    "sqlite": lambda tmp: SQLiteStore(tmp / "index.sqlite"),
    "postgres": postgres_store,
}

TEXT_A = '''"""Loads settings from disk."""


def load_config(path):
    """Read the TOML configuration file."""
    # parse every section of the file
    return parse(path)


class ConfigError(Exception):
    pass
'''
TEXT_B = "from a import load_config\n\n\ndef main():\n    load_config('x')\n"


def _row(path: str, text: str) -> FileRow:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return FileRow(path, len(text), 1, digest, "python", text.count("\n"), 10, False)


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    s = STORES[request.param](tmp_path)
    try:
        yield s
    finally:
        s.close()


def _fill(store: IndexStore) -> None:
    with store.batch() as w:
        w.put_file(
            _row("a.py", TEXT_A),
            TEXT_A,
            [
                (
                    "load_config",
                    "load_config",
                    "function",
                    "a.py",
                    4,
                    7,
                    "def load_config(path):",
                    "Read the TOML configuration file.",
                ),
                (
                    "ConfigError",
                    "ConfigError",
                    "class",
                    "a.py",
                    10,
                    11,
                    "class ConfigError(Exception):",
                    "",
                ),
            ],
            [("parse", "a.py", 7, "call")],
        )
        w.put_file(
            _row("b.py", TEXT_B),
            TEXT_B,
            [("main", "main", "function", "b.py", 4, 5, "def main():", "")],
            [("load_config", "b.py", 1, "call"), ("load_config", "b.py", 5, "call")],
        )
        w.put_skipped(SkippedFile("big.bin", "binary", "NUL bytes"), 100, 7)
        w.set_meta("commit", "abc")


def test_a_stored_file_reads_back_with_its_text_definitions_and_references(
    store: IndexStore,
) -> None:
    _fill(store)
    assert set(store.file_rows()) == {"a.py", "b.py"}
    assert store.file_rows()["a.py"] == _row("a.py", TEXT_A)
    assert store.text("a.py") == TEXT_A
    assert store.text("missing.py") is None
    assert dict(store.iter_texts(["b.py", "a.py", "nope"])) == {"a.py": TEXT_A, "b.py": TEXT_B}
    assert store.symbol_count() == 3
    assert store.refs("load_config", 10) == [
        Reference("load_config", "b.py", 1, "call"),
        Reference("load_config", "b.py", 5, "call"),
    ]
    assert store.refs("load_config", 1) == [Reference("load_config", "b.py", 1, "call")]
    skip = store.skipped_rows()["big.bin"]
    assert (skip.size, skip.mtime_ns, skip.skip.reason) == (100, 7, "binary")
    assert store.meta("commit") == "abc"
    assert store.meta("nope") is None


def test_definition_queries_in_every_mode(store: IndexStore) -> None:
    _fill(store)
    names = lambda q: [d.name for d in store.find_defs(q)]  # noqa: E731
    assert names(DefQuery("exact", "load_config")) == ["load_config"]
    assert names(DefQuery("prefix", "LOAD")) == ["load_config"]
    assert names(DefQuery("substring", "error")) == ["ConfigError"]
    assert names(DefQuery("regex", "^(main|Config.*)$")) == ["ConfigError", "main"]
    assert names(DefQuery("path", "a.py")) == ["load_config", "ConfigError"]
    assert names(DefQuery("all", kinds=frozenset({"class"}))) == ["ConfigError"]
    assert names(DefQuery("all", path_regex=r"b\.py\Z")) == ["main"]
    assert names(DefQuery("all", limit=1)) == ["load_config"]
    d = store.find_defs(DefQuery("exact", "main"))[0]
    assert d == Definition("main", "main", "function", "b.py", 4, 5, "def main():", "")


def test_replacing_a_file_replaces_everything_stored_for_it(store: IndexStore) -> None:
    _fill(store)
    with store.batch() as w:
        w.put_file(_row("a.py", "x = 1\n"), "x = 1\n", [], [])
    assert store.text("a.py") == "x = 1\n"
    assert store.find_defs(DefQuery("path", "a.py")) == []
    assert store.refs("parse", 10) == []
    assert store.text_search(["toml"], 10) == []
    with store.batch() as w:
        w.delete_paths(["b.py", "big.bin"])
    assert set(store.file_rows()) == {"a.py"}
    assert store.skipped_rows() == {}
    assert store.refs("load_config", 10) == []


def test_a_failed_batch_writes_nothing(store: IndexStore) -> None:
    _fill(store)
    with pytest.raises(RuntimeError), store.batch() as w:
        w.delete_paths(["a.py"])
        raise RuntimeError("disk full")
    assert store.text("a.py") == TEXT_A


def test_ranked_text_search_uses_names_paths_docstrings_and_comments(store: IndexStore) -> None:
    _fill(store)
    by_doc = store.text_search(["toml", "configuration"], 10)
    assert by_doc and by_doc[0].qualname == "load_config"
    assert by_doc[0].start_line == 4 and by_doc[0].path == "a.py"
    by_comment = store.text_search(["section"], 10)
    assert [h.qualname for h in by_comment] == ["load_config"]
    by_name = store.text_search(["config"], 10)
    assert {h.qualname for h in by_name} >= {"load_config", "ConfigError"}
    by_module_doc = store.text_search(["settings"], 10)
    assert [(h.path, h.kind) for h in by_module_doc] == [("a.py", "file")]
    assert store.text_search(["loading"], 5)[0].qualname == "load_config"  # stemmed
    assert store.text_search([], 5) == []
    assert store.text_search(['"; DROP'], 5) == []


def test_graph_queries_for_the_repo_map(store: IndexStore) -> None:
    _fill(store)
    assert store.edges() == [("b.py", "a.py", 2)]
    assert store.ref_counts() == {"load_config": 2, "parse": 1}
    assert store.ref_counts(["load_config", "nothing"]) == {"load_config": 2}


def test_bulk_load_leaves_a_queryable_store(store: IndexStore) -> None:
    with store.bulk_load():
        _fill(store)
    assert [d.name for d in store.find_defs(DefQuery("exact", "main"))] == ["main"]


def test_the_writer_lock_admits_one_writer_at_a_time(store: IndexStore) -> None:
    inside = 0
    peak = 0
    lock = threading.Lock()

    def write() -> None:
        nonlocal inside, peak
        with store.writer():
            with lock:
                inside += 1
                peak = max(peak, inside)
            with store.batch() as w:
                w.set_meta("k", threading.current_thread().name)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert peak == 1
    assert store.meta("k") is not None
