"""Search never keeps a stale text, and worker threads never pile up connections."""

from __future__ import annotations

import threading
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
from rlm_mcp.index.store.sqlite import SQLiteStore


def test_grep_sees_every_edit_applied_while_searches_run(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    with load(src, IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        stop = threading.Event()
        errors: list[BaseException] = []

        def search() -> None:
            try:
                while not stop.is_set():
                    repo.grep(r"MARKER_\d+", max_results=5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=search) for _ in range(3)]
        for t in threads:
            t.start()
        for n in range(30):
            (src / "m7.py").write_text(f"def f7():\n    return 'MARKER_{n}'\n")
            repo.apply_changes({"m7.py"}, set())
        stop.set()
        for t in threads:
            t.join(30)
        assert errors == []
        hits = repo.grep(r"MARKER_\d+")
        assert [h.text for h in hits] == ["    return 'MARKER_29'"]
        repo.refresh()
        assert [h.text for h in repo.grep(r"MARKER_\d+")] == ["    return 'MARKER_29'"]


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def a():\n    pass\n")
    with load(src, IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        store = repo.store
        for _ in range(7):
            wave = [threading.Thread(target=lambda: repo.symbols("a")) for _ in range(8)]
            for t in wave:
                t.start()
            for t in wave:
                t.join(10)
        assert isinstance(store, SQLiteStore)
        assert store.open_connections() <= 2  # this thread's, and at most one more
