"""Cold loads in two passes: texts first (grep works at once), then the text index and symbols.

The gated store below is a fault-injection double (a store whose writes of the
second pass wait, or fail as Ctrl-C would): it lets a test look at the index
while it is partial, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load, sync
from rlm_mcp.index.store.sqlite import SQLiteStore, db_path_for
from tests.index.index_helpers import make_tree, snapshot


class GatedStore(SQLiteStore):
    """Holds the second pass at a gate: in ``index_texts`` (writer lock held) or, with
    ``hold_symbols``, before the first symbol batch takes the writer lock (so the test
    can write meanwhile). ``interrupt_after`` raises KeyboardInterrupt as Ctrl-C would."""

    def __init__(
        self, path: Path, *, interrupt_after: int | None = None, hold_symbols: bool = False
    ) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.reached = threading.Event()
        self.interrupt_after = interrupt_after
        self.hold_symbols = hold_symbols
        self.text_done = False
        self.steps = 0

    def index_texts(self, max_files: int) -> bool:
        if not self.hold_symbols:
            self.reached.set()
            assert self.gate.wait(30), "the test never opened the gate"
        self.steps += 1
        if self.interrupt_after is not None and self.steps > self.interrupt_after:
            raise KeyboardInterrupt
        self.text_done = super().index_texts(max_files)
        return self.text_done

    @contextmanager
    def writer(self) -> Iterator[None]:
        in_pass = threading.current_thread().name.startswith("rlm-complete")
        if self.hold_symbols and in_pass and self.text_done:
            self.reached.set()
            assert self.gate.wait(30), "the test never opened the gate"
        with super().writer():
            yield


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _settings(tmp_path: Path) -> IndexSettings:
    return IndexSettings(cache_dir=_cache(tmp_path), workers=2)


def _clean_snapshot(root: Path, tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    """The tables of an uninterrupted, in-line load of ``root`` into a fresh cache."""
    other = tmp_path / "clean-cache"
    with load(root, IndexSettings(cache_dir=other, workers=2)):
        pass
    return snapshot(db_path_for(other, root))


def test_a_background_load_serves_grep_at_once_and_says_symbols_are_partial(
    tmp_path: Path,
) -> None:
    root = make_tree(tmp_path / "repo")
    settings = _settings(tmp_path)
    store = GatedStore(db_path_for(_cache(tmp_path), root))
    repo = load(root, settings, store=store, background=True)
    try:
        assert store.reached.wait(10)
        # Every file is listed and searchable; no symbol is extracted yet.
        assert repo.report.files == 320
        assert repo.partial
        note = repo.partial_note()
        assert note is not None and "0 of 320 files" in note
        hits = repo.grep(r"def func_7_3\(", max_results=10)
        assert [(h.path, h.line) for h in hits] == [("pkg7/mod7.py", 16)]
        assert repo.symbols("func_7_3") == []
        assert store.unparsed_paths() == sorted(repo.entries())
        assert repo.progress_state is not None and repo.progress_state.phase == "text index"
        store.gate.set()
        assert repo.wait_complete(60)
        assert not repo.partial and repo.partial_note() is None
        assert repo.progress_state is not None and repo.progress_state.phase == "complete"
        assert [d.path for d in repo.symbols("func_7_3")] == ["pkg7/mod7.py"]
        assert repo.report.symbols == 320 * 13
        assert store.text_index_progress() == (320, 320)
        assert store.grep_candidates([["func_7_3"]]) == {"pkg7/mod7.py"}
    finally:
        repo.close()
    assert _clean_snapshot(root, tmp_path) == snapshot(db_path_for(_cache(tmp_path), root))


def test_an_interrupted_second_pass_resumes_on_the_next_load_and_ends_equal_to_a_clean_load(
    tmp_path: Path,
) -> None:
    root = make_tree(tmp_path / "repo")
    settings = _settings(tmp_path)
    db = db_path_for(_cache(tmp_path), root)
    store = GatedStore(db, interrupt_after=0)
    store.gate.set()
    try:
        load(root, settings, store=store)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the gated store should have interrupted the load")
    # The texts are stored; the text index and the symbols are not.
    probe = SQLiteStore(db)
    try:
        assert len(probe.unparsed_paths()) == 320
        assert probe.text_index_progress() == (0, 320)
    finally:
        probe.close()
    with load(root, settings) as repo:
        assert repo.report.parsed == 0 and repo.report.reused == 321  # texts kept, blob skipped
        assert not repo.partial
        assert repo.report.symbols == 320 * 13
        assert repo.store.unparsed_paths() == []
        assert repo.store.text_index_progress() == (320, 320)
    assert _clean_snapshot(root, tmp_path) == snapshot(db)


def test_an_edit_during_the_second_pass_is_not_overwritten_by_its_older_parse(
    tmp_path: Path,
) -> None:
    root = make_tree(tmp_path / "repo")
    settings = _settings(tmp_path)
    store = GatedStore(db_path_for(_cache(tmp_path), root), hold_symbols=True)
    repo = load(root, settings, store=store, background=True)
    try:
        # The symbol pass has parsed (or is parsing) the first batch, which holds
        # pkg0/mod0.py, and waits to store it: edit that file now.
        assert store.reached.wait(10)
        first = sorted(repo.entries())[0]
        assert first == "pkg0/mod0.py"
        (root / first).write_text("def edited_while_indexing():\n    return 1\n")
        repo.apply_changes({first}, set())
        assert [d.name for d in repo.outline(first)] == ["edited_while_indexing"]
        store.gate.set()
        assert repo.wait_complete(60)
        assert [d.name for d in repo.outline(first)] == ["edited_while_indexing"]
        assert repo.symbols("func_0_0", match="exact") == []
        assert repo.grep("func_0_0", fixed=True) == []
        assert repo.store.unparsed_paths() == []
    finally:
        repo.close()


def test_a_big_change_set_is_searchable_first_and_its_symbols_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch switch: past TEXTS_FIRST_FILES changed files, texts go in first."""
    monkeypatch.setattr(sync, "TEXTS_FIRST_FILES", 50)
    root = make_tree(tmp_path / "repo")
    settings = _settings(tmp_path)
    with load(root, settings) as repo:
        changed = sorted(repo.entries())[::3]
        for n, rel in enumerate(changed):
            with open(root / rel, "a") as fh:
                fh.write(f"\n\ndef switched_{n}():\n    return {n}\n")
        repo.apply_changes(set(changed), set())
        # Every changed file is searchable when apply_changes returns.
        hits = repo.grep(r"def switched_\d+\(", max_results=1000)
        assert len(hits) == len(changed)
        assert repo.wait_complete(60)
        assert not repo.partial and repo.store.unparsed_paths() == []
        found = repo.symbols("switched_", match="prefix", limit=1000)
        assert sorted(d.path for d in found) == changed
        assert repo.report.symbols == 320 * 13 + len(changed)
    assert _clean_snapshot(root, tmp_path) == snapshot(db_path_for(_cache(tmp_path), root))
