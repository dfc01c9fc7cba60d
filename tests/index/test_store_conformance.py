"""Every IndexStore implementation passes these; a new store adds its factory to STORES."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rlm_mcp.index.model import Definition, DefQuery, FileEntry, FileRow, Reference, SkippedFile
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.sqlite import SQLiteStore
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
    assert store.text("b.py") == TEXT_B
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


def test_file_rows_and_entries_read_every_file_or_the_named_ones(store: IndexStore) -> None:
    _fill(store)
    many = [f"pkg/m{i:04}.py" for i in range(1_100)]  # more than one statement's worth
    with store.batch() as w:
        w.put_text(replace(_row("bad.py", "x\n"), invalid_utf8=True), "x\n")
        for p in many:
            w.put_text(_row(p, "y = 1\n"), "y = 1\n")
    a, bad = _row("a.py", TEXT_A), replace(_row("bad.py", "x\n"), invalid_utf8=True)
    assert store.file_rows(["bad.py", "big.bin", "nope.py", "a.py"]) == {"a.py": a, "bad.py": bad}
    assert store.file_rows([]) == {} and store.file_entries([]) == {}
    assert store.file_rows(many).keys() == set(many)
    entries = store.file_entries()
    assert list(entries) == sorted(["a.py", "b.py", "bad.py", *many])
    assert entries["a.py"] == FileEntry("a.py", a.size, 1, "python", a.lines, 10, False)
    assert entries["bad.py"].invalid_utf8 is True and entries["a.py"].invalid_utf8 is False
    assert store.file_entries([*reversed(many), "big.bin", "b.py"]) == {
        p: entries[p] for p in sorted([*many, "b.py"])
    }
    assert list(store.file_entries(many[::-1])) == many


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


def test_texts_first_then_symbols_and_the_trigram_index_in_steps(store: IndexStore) -> None:
    """The passes of a cold load: put_text, index_texts in steps, then put_file."""
    texts = {
        f"m{i:02}.py": f"def handler_{i}(request):\n    return token_{i % 3}\n" for i in range(30)
    }
    texts["odd.py"] = "Straße = 'x'\nKELVIN_TEMPERATURE = 3\n"
    with store.bulk_load(), store.batch() as w:
        for p, t in texts.items():
            w.put_text(_row(p, t), t)
    assert store.unparsed_paths() == sorted(texts)
    assert store.symbol_count() == 0
    assert store.text(p) == texts[p]
    deferred = store.text_index_progress() == (0, len(texts))
    if deferred:  # a store may build its text index after a bulk load, in steps
        assert store.grep_candidates([["handler_7"]]) is None  # nothing indexed: scan all
        assert store.index_texts(10) is False
        assert store.text_index_progress() == (10, len(texts))
        # Files not yet in the index are candidates for any pattern.
        partial = store.grep_candidates([["handler_7("]])
        assert partial is not None and "m07.py" in partial and len(partial) <= len(texts) - 9
    else:  # or keep it current all along
        assert store.text_index_progress() == (len(texts), len(texts))
    while not store.index_texts(10):
        pass
    assert store.text_index_progress() == (len(texts), len(texts))
    assert store.grep_candidates([["handler_7("]]) == {"m07.py"}
    assert store.grep_candidates([["HANDLER_12"], ["kelvin_temp"]]) == {"m12.py", "odd.py"}
    assert store.grep_candidates([["return token_2", "handler_5("]]) == {"m05.py"}
    assert store.grep_candidates([["no such text"]]) == set()
    # The symbols pass: put_file with the same hash keeps the text; the file is parsed now.
    t = texts["m07.py"]
    with store.batch() as w:
        w.put_file(
            _row("m07.py", t),
            t,
            [("handler_7", "handler_7", "function", "m07.py", 1, 2, "def handler_7(request):", "")],
            [],
        )
    assert "m07.py" not in store.unparsed_paths()
    assert [d.name for d in store.find_defs(DefQuery("path", "m07.py"))] == ["handler_7"]
    assert store.grep_candidates([["handler_7("]]) == {"m07.py"}
    # A changed text replaces the old one in the trigram index too.
    new = "def renamed_7():\n    pass\n"
    with store.batch() as w:
        w.put_file(_row("m07.py", new), new, [], [])
        w.delete_paths(["m08.py"])
    assert store.grep_candidates([["handler_7("]]) == set()
    assert store.grep_candidates([["renamed_7"]]) == {"m07.py"}
    assert store.grep_candidates([["handler_8("]]) == set()
    assert store.text_index_progress() == (len(texts) - 1, len(texts) - 1)


def test_file_graph_is_edges_as_ids_with_a_bounded_fan_out(store: IndexStore) -> None:
    # c.py uses f0 (defined in d0.py) 1 time, f1 2 times, ... f4 5 times; "common" is
    # defined in 10 files (too many to say which one a use means); e.py uses only it.
    with store.batch() as w:
        for i in range(5):
            p = f"d{i}.py"
            w.put_file(
                _row(p, f"def f{i}(): pass\n"),
                f"def f{i}(): pass\n",
                [(f"f{i}", f"f{i}", "function", p, 1, 1, "", "")],
                [],
            )
        for i in range(10):
            p = f"m{i}.py"
            w.put_file(
                _row(p, "def common(): pass\n"),
                "def common(): pass\n",
                [("common", "common", "function", p, 1, 1, "", "")],
                [],
            )
        refs = [(f"f{i}", "c.py", 10 * i + k, "call") for i in range(5) for k in range(i + 1)]
        w.put_file(_row("c.py", "x\n"), "x\n", [], refs)
        w.put_file(_row("e.py", "y\n"), "y\n", [], [("common", "e.py", 1, "call")])
    graph = store.file_graph()
    assert graph.paths == sorted(store.file_rows())
    named = [
        (graph.paths[a], graph.paths[b], w)
        for a, b, w in zip(graph.src, graph.dst, graph.weight, strict=True)
    ]
    assert sorted(named) == sorted(store.edges()) == [("c.py", f"d{i}.py", i + 1) for i in range(5)]
    pairs = list(zip(graph.src, graph.dst, strict=True))
    assert pairs == sorted(pairs)
    # At most max_out edges per referencing file: its heaviest.
    top = store.file_graph(max_out=2)
    assert [(top.paths[b], w) for b, w in zip(top.dst, top.weight, strict=True)] == [
        ("d3.py", 4),
        ("d4.py", 5),
    ]
    # A name defined in more files than max_defining_files is left out, unless allowed.
    wide = store.file_graph(max_defining_files=10)
    assert sum(1 for a in wide.src if wide.paths[a] == "e.py") == 10
