"""The repository map at scale: an aggregate graph, bounded state, an order kept in the store."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.index import Repository, repomap
from rlm_mcp.index.model import DefQuery
from tests.index.index_helpers import write
from tests.polling import poll, wait_until


def _reference_pagerank(
    nodes: list[str], edges: list[tuple[str, str, int]], pers: dict[str, float] | None
) -> dict[str, float]:
    """The dict-of-strings power iteration the map used before: the numbers to match."""
    index = {n: i for i, n in enumerate(nodes)}
    size = len(nodes)
    out_weight = [0.0] * size
    adj: list[list[tuple[int, float]]] = [[] for _ in range(size)]
    for a, b, w in edges:
        ia, ib = index.get(a), index.get(b)
        if ia is None or ib is None or ia == ib:
            continue
        adj[ia].append((ib, float(w)))
        out_weight[ia] += float(w)
    total = sum(pers.get(n, 0.0) for n in nodes) if pers else 0.0
    p = [pers.get(n, 0.0) / total for n in nodes] if pers and total > 0 else [1.0 / size] * size
    rank = list(p)
    for _ in range(repomap.MAX_ITER):
        new = [(1.0 - repomap.DAMPING) * x for x in p]
        dangling = 0.0
        for i, r in enumerate(rank):
            if out_weight[i] == 0:
                dangling += r
                continue
            share = repomap.DAMPING * r / out_weight[i]
            for j, wt in adj[i]:
                new[j] += share * wt
        for i in range(size):
            new[i] += repomap.DAMPING * dangling * p[i]
        delta = sum(abs(x - y) for x, y in zip(new, rank, strict=True))
        rank = new
        if delta < repomap.TOLERANCE:
            break
    return dict(zip(nodes, rank, strict=True))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_array_pagerank_gives_the_numbers_of_the_plain_one(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [f"f{i:03}.py" for i in range(120)]
    edges = [
        (rng.choice(nodes), rng.choice(nodes), rng.randint(1, 9))
        for _ in range(rng.randint(50, 600))
    ] + [("f000.py", "gone.py", 3)]
    pers = {nodes[5]: 1.0, nodes[17]: 0.5} if seed == 2 else None
    got = repomap.pagerank(nodes, edges, pers)
    want = _reference_pagerank(nodes, edges, pers)
    assert got.keys() == want.keys()
    assert all(abs(got[n] - want[n]) < 1e-12 for n in nodes)


def _project(tmp_path: Path) -> None:
    files = {
        "core/base.py": "class Base:\n    pass\n\n\ndef shared():\n    return 1\n",
        "core/util.py": "from core.base import shared\n\n\ndef helper():\n    return shared()\n",
    }
    for i in range(12):
        files[f"app/m{i:02}.py"] = (
            f"from core.base import Base, shared\n\n\nclass Thing{i}(Base):\n"
            f"    def go(self):\n        return shared() + helper()\n"
        )
    write(tmp_path, files)


def test_the_map_reads_an_aggregate_and_only_the_definitions_it_shows(
    tmp_path: Path, loader: Callable[..., Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    repo = loader(tmp_path)
    store = repo.searcher.store
    graphs: list[tuple[Any, ...]] = []
    queries: list[DefQuery] = []
    file_graph, find_defs = store.file_graph, store.find_defs

    def no_edges(*_a: object, **_k: object) -> None:
        raise AssertionError("the map must not read the edge list into Python")

    def counted_graph(*args: Any) -> Any:
        graphs.append(args)
        return file_graph(*args)

    def seen_defs(q: DefQuery) -> Any:
        queries.append(q)
        return find_defs(q)

    monkeypatch.setattr(store, "edges", no_edges)
    monkeypatch.setattr(store, "file_graph", counted_graph)
    monkeypatch.setattr(store, "find_defs", seen_defs)
    text = repo.repo_map(200)
    assert text.splitlines()[0] == "core/base.py:"
    assert "  class Base (1)" in text
    # One bounded aggregate (at most MAX_OUT_EDGES per file), per-file definitions only.
    assert graphs == [(repomap.MAX_DEFINING_FILES, repomap.MAX_OUT_EDGES)]
    assert queries and all(q.mode == "path" for q in queries)
    assert len(queries) <= repomap.DEFS_BATCH
    # A second call at the same index version computes nothing again.
    assert repo.repo_map(200) == text
    assert repo.repo_map(200, focus="app/m03.py").splitlines()[0] == "app/m03.py:"
    assert len(graphs) == 1


def test_the_order_is_kept_in_the_store_for_the_next_process(
    tmp_path: Path, loader: Callable[..., Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    repo = loader(tmp_path)
    first = repo.repo_map(300)
    store = repo.searcher.store
    wait_until(
        lambda: store.meta(repomap.META_KEY) is not None, 10, "the order to be kept in the store"
    )
    # Another process over the same index: no state in memory, the order comes from the store.
    monkeypatch.setattr(repomap, "_states", type(repomap._states)())

    def no_graph(*_a: object, **_k: object) -> None:
        raise AssertionError("the kept order should have been used")

    monkeypatch.setattr(store, "file_graph", no_graph)
    assert repo.repo_map(300) == first
    # Kept under other contents, it is not used (unless it was slow to compute).
    kept = store.meta(repomap.META_KEY)
    assert kept is not None
    paths_key, contents_key = kept.split("|")[1:3]
    size = len(repo.files())
    assert repomap._decode(kept, (paths_key, contents_key), size) is not None
    assert repomap._decode(kept, (paths_key, "other"), size) is None
    assert repomap._decode(kept, ("other", contents_key), size) is None
    assert repomap._decode(kept, (paths_key, contents_key), size + 1) is None


def test_a_slow_order_is_shown_stale_while_the_new_one_is_computed(
    tmp_path: Path, loader: Callable[..., Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    repo = loader(tmp_path)
    monkeypatch.setattr(repomap, "REFRESH_AFTER_S", -1.0)  # every order counts as slow
    before = repo.repo_map(300)
    assert before.splitlines()[0] == "core/base.py:"
    release = threading.Event()
    store = repo.searcher.store
    file_graph = store.file_graph

    calls: list[float] = []

    def slow_graph(*args: Any) -> Any:
        calls.append(time.monotonic())
        release.wait(10)
        return file_graph(*args)

    monkeypatch.setattr(store, "file_graph", slow_graph)
    # core/util.py becomes what every module leans on; the paths stay the same.
    (tmp_path / "core" / "util.py").write_text(
        "".join(f"def u{i}():\n    return {i}\n\n\n" for i in range(12))
    )
    for i in range(12):
        (tmp_path / "app" / f"m{i:02}.py").write_text(
            "from core.util import "
            + ", ".join(f"u{k}" for k in range(12))
            + "\n\n\n"
            + "".join(f"u{k}()\n" for k in range(12)) * 3
        )
    repo.apply_changes({"core/util.py", *(f"app/m{i:02}.py" for i in range(12))}, set())
    try:
        assert repo.repo_map(300).splitlines()[0] == "core/base.py:"  # at once: the stale order
        # The computation runs on its own thread: wait until it is inside the slow graph.
        poll(lambda: calls, 10)
        assert len(calls) == 1
        # Another change while that runs: still the stale order, and no second computation yet.
        (tmp_path / "core" / "base.py").write_text(
            "class Base:\n    x = 1\n\n\ndef shared():\n    pass\n"
        )
        repo.apply_changes({"core/base.py"}, set())
        assert repo.repo_map(300).splitlines()[0] == "core/base.py:"
        assert len(calls) == 1
    finally:
        release.set()
    poll(lambda: repo.repo_map(300).splitlines()[0] == "core/util.py:", 10, interval=0.02)
    assert repo.repo_map(300).splitlines()[0] == "core/util.py:"
    assert len(calls) == 2  # the newer version's, once the first had ended


def test_a_slow_graph_is_kept_for_focused_maps_of_later_processes(
    tmp_path: Path, loader: Callable[..., Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    repo = loader(tmp_path)
    monkeypatch.setattr(repomap, "REFRESH_AFTER_S", -1.0)  # every graph counts as slow
    focused = repo.repo_map(300, focus="app/m05.py")
    plain = repo.repo_map(300)
    store = repo.searcher.store
    wait_until(
        lambda: store.meta(repomap.GRAPH_KEY) is not None, 10, "the graph to be kept in the store"
    )
    monkeypatch.setattr(repomap, "_states", type(repomap._states)())

    def no_graph(*_a: object, **_k: object) -> None:
        raise AssertionError("the kept graph should have been used")

    monkeypatch.setattr(store, "file_graph", no_graph)
    assert repo.repo_map(300, focus="app/m05.py") == focused
    assert repo.repo_map(300) == plain
