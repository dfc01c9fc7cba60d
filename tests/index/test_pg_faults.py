"""Faults on the shared index: the server restarted or stopped under load, the writer killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.model import DefQuery
from rlm_mcp.index.repository import load
from rlm_mcp.index.store.open import repo_identity
from rlm_mcp.index.store.postgres.store import PostgresStore
from tests.pg_cluster import Cluster, private, shared
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _corpus(root: Path, files: int) -> Path:
    for i in range(files):
        d = root / f"pkg{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(
            f'"""Module {i}: helpers for stage {i % 13}."""\n\n\n'
            f"def compute_{i}(value):\n"
            f'    """Compute stage {i} of the pipeline."""\n'
            f"    return helper_{(i + 1) % files}(value) + {i}\n\n\n"
            f"def helper_{i}(value):\n    return value * {i % 5}\n\n\n"
            f"class Stage{i}:\n    def run(self):\n        return compute_{i}(1)\n"
        )
    return root


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = private()
    try:
        yield c
    finally:
        c.destroy()


def _load_under(
    store: PostgresStore, errors: list[BaseException], stop: threading.Event, done: list[int]
) -> None:
    while not stop.is_set():
        try:
            assert store.find_defs(DefQuery("exact", "compute_3"))
            assert store.text_search(["compute", "stage"], 10)
            assert store.text("pkg3/mod3.py") is not None
            done.append(1)
        except BaseException as exc:
            errors.append(exc)


def _fill(store: PostgresStore, root: Path) -> None:
    repo = load(root, IndexSettings(index_url=store.url, workers=1, watch=False))
    repo.close()


def _readers(
    url: str, identity: str, n: int, done: list[int]
) -> tuple[list[threading.Thread], list[BaseException], threading.Event, list[PostgresStore]]:
    errors: list[BaseException] = []
    stop = threading.Event()
    stores = [PostgresStore(url, identity) for _ in range(n)]
    threads = [
        threading.Thread(target=_load_under, args=(s, errors, stop, done), daemon=True)
        for s in stores
    ]
    for t in threads:
        t.start()
    return threads, errors, stop, stores


def test_readers_ride_through_a_server_restart(cluster: Cluster, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "repo", 20)
    identity = repo_identity(root)
    first = PostgresStore(cluster.url, identity)
    _fill(first, root)
    done: list[int] = []
    threads, errors, stop, stores = _readers(cluster.url, identity, 4, done)
    try:
        wait_until(lambda: len(done) >= 8, 30, "the readers to get going", interval=0.02)
        cluster.restart()
        assert cluster.ready()
        # Every reader gets a fresh connection and carries on.
        marks = [s.find_defs(DefQuery("exact", "helper_4")) for s in stores]
        assert all(marks)
        after = len(done)
        wait_until(
            lambda: len(done) >= after + 8,
            30,
            "the readers to go on after the restart",
            interval=0.02,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for s in [*stores, first]:
            s.close()
    assert errors == []


def _outage(cluster: Cluster, tmp_path: Path, seconds: float) -> None:
    root = _corpus(tmp_path / "repo", 5)
    store = PostgresStore(cluster.url, repo_identity(root))
    _fill(store, root)
    try:
        cluster.stop()
        timer = threading.Timer(seconds, cluster.start)
        timer.start()
        t0 = time.monotonic()
        assert store.find_defs(DefQuery("exact", "compute_1")), "the read waited out the outage"
        assert time.monotonic() - t0 >= seconds * 0.5
        timer.join()
        assert store.text_search(["compute"], 5)
    finally:
        store.close()


def test_a_short_outage_is_waited_out(cluster: Cluster, tmp_path: Path) -> None:
    _outage(cluster, tmp_path, 1.0)


@pytest.mark.slow
def test_a_ten_second_partition_is_waited_out(cluster: Cluster, tmp_path: Path) -> None:
    _outage(cluster, tmp_path, 10.0)


@pytest.mark.slow
def test_a_server_that_stays_down_is_one_clear_error(cluster: Cluster, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "repo", 5)
    store = PostgresStore(cluster.url, repo_identity(root))
    _fill(store, root)
    try:
        cluster.stop()
        with pytest.raises(IndexUnavailable) as info:
            store.find_defs(DefQuery("exact", "compute_1"))
        assert "\n" not in str(info.value) and "unreachable" in str(info.value)
        with pytest.raises(IndexUnavailable), store.batch() as w:
            w.set_meta("k", "v")
    finally:
        store.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from rlm_mcp.config import IndexSettings
    from rlm_mcp.index.store.open import repo_identity
    from rlm_mcp.index.repository import load
    load(sys.argv[1], IndexSettings(index_url=sys.argv[2], workers=1, watch=False))
    print("finished", flush=True)
    """
)


def _count(url: str, identity: str, *, parsed: bool = False) -> int:
    """Files stored for ``identity`` (0 before the writer created the tables).

    ``parsed``: only those whose symbols are in (a cold load stores every text
    first, then extracts symbols in a second pass).
    """
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('rlm_files') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return 0
        row = conn.execute(
            "SELECT count(*) FROM rlm_files f JOIN rlm_repos r USING (repo_id) "
            "WHERE r.identity = %s" + (" AND f.parsed" if parsed else ""),
            (identity,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_writer_killed_mid_load_is_finished_by_the_next_and_equals_a_cold_load(
    tmp_path: Path,
) -> None:
    url = shared().url
    root = _corpus(tmp_path / "repo", 260)
    identity = repo_identity(root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), url],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: _count(url, identity, parsed=True) > 0,
            120,
            "the writer to write",
            interval=0.02,
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    partial = _count(url, identity, parsed=True)
    assert 0 < partial < 260, "the kill did not land mid-load"
    assert _count(url, identity) == 260  # every text went in first
    settings = IndexSettings(index_url=url, workers=1, watch=False)
    resumed = load(root, settings)
    cold_store = PostgresStore(url, identity + "#cold")
    cold = load(root, settings, store=cold_store)
    try:
        assert resumed.report.parsed == 0  # the texts were all stored; symbols resumed
        assert resumed.report.reused == 260
        assert resumed.store.unparsed_paths() == []
        assert resumed.entries() == cold.entries()
        assert resumed.store.symbol_count() == cold.store.symbol_count()
        q = DefQuery("all")
        assert resumed.store.find_defs(q) == cold.store.find_defs(q)
        assert resumed.store.edges() == cold.store.edges()
        terms = ["compute", "stage", "pipeline", "helper", "run"]
        # Equal scores may come in another order (ties follow insertion order).
        assert sorted(resumed.store.text_search(terms, 10_000), key=repr) == sorted(
            cold.store.text_search(terms, 10_000), key=repr
        )
    finally:
        resumed.close()
        cold.close()


_READER = textwrap.dedent(
    """
    import sys
    from rlm_mcp.index.store.postgres.store import PostgresStore
    from rlm_mcp.index.model import DefQuery
    s = PostgresStore(sys.argv[1], sys.argv[2])
    print("reading", flush=True)
    while True:
        s.text_search(["compute", "stage", "pipeline"], 50)
        s.find_defs(DefQuery("regex", "compute_.*"))
    """
)


def test_a_replica_killed_mid_query_leaves_the_others_and_the_database_unharmed(
    tmp_path: Path,
) -> None:
    url = shared().url
    root = _corpus(tmp_path / "repo", 30)
    identity = repo_identity(root)
    store = PostgresStore(url, identity)
    _fill(store, root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, url, identity],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]

    def backends() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()
        return int(row[0]) if row else 0

    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "reading"
        before = backends()
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=30)
        wait_until(
            lambda: backends() < before, 30, "the killed replica's session to end", interval=0.02
        )
        assert procs[1].poll() is None, "the other replica died with it"
        assert store.text_search(["compute"], 5)
        with store.writer(), store.batch() as w:  # no lock was left behind
            w.set_meta("after", "kill")
    finally:
        for p in procs:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        store.close()
