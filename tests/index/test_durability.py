"""The cache under concurrent writers, kills at any point, and corruption on disk."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import IndexCorrupted
from rlm_mcp.index import load
from rlm_mcp.index.store.sqlite import db_path_for
from tests.index.index_helpers import make_tree, snapshot
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]
LOADER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from rlm_mcp.config import IndexSettings\n"
    "from rlm_mcp.index import load\n"
    "if __name__ == '__main__':\n"
    "    repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), watch=False, workers=2))\n"
    "    print(repo.report.files, repo.report.symbols)\n"
    "    repo.close()\n"
)


def indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='index'").fetchall()
    return {r[0] for r in rows}


def clean_load(src: Path, tmp: Path) -> dict[str, list[tuple[object, ...]]]:
    cache = tmp / "clean-cache"
    with load(src, IndexSettings(cache_dir=cache, watch=False)):
        pass
    return snapshot(db_path_for(cache, src.resolve()))


def spawn_loader(src: Path, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LOADER, str(src), str(cache)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("loaders", [2, 3])
def test_concurrent_cold_loads_of_one_repository_end_identical_to_a_clean_load(
    tmp_path: Path, loaders: int
) -> None:
    src = make_tree(tmp_path / "src")
    cache = tmp_path / "shared-cache"
    procs = [spawn_loader(src, cache) for _ in range(loaders)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.split()[0] == "320"
    db = db_path_for(cache, src.resolve())
    assert snapshot(db) == clean_load(src, tmp_path)


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def _files_written(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def _wait_for_rows(db: Path, at_least: int, proc: subprocess.Popen[str]) -> None:
    """Until the running loader has written ``at_least`` files; fails if it ends first."""

    def progress() -> str:
        if proc.poll() is not None:
            return "ended"
        return "written" if _files_written(db) >= at_least else ""

    if poll(progress, 60, interval=0.01) != "written":
        pytest.fail(f"the loader never wrote {at_least} files (exit {proc.poll()})")


@pytest.mark.parametrize("kill_after_files", [1, 150])
def test_a_cold_load_killed_midway_resumes_with_its_indexes_and_leaves_no_helpers(
    tmp_path: Path, kill_after_files: int
) -> None:
    src = make_tree(tmp_path / "src", files=400)
    cache = tmp_path / "cache"
    db = db_path_for(cache, src.resolve())
    proc = spawn_loader(src, cache)
    _wait_for_rows(db, kill_after_files, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    poll(lambda: not _group_alive(proc.pid), 20, interval=0.05)
    assert _group_alive(proc.pid) == [], "parser helpers outlived the killed loader"
    with load(src, IndexSettings(cache_dir=cache, watch=False)) as repo:
        assert repo.report.reused >= kill_after_files
        assert repo.report.files == 400
    assert {"defs_name", "defs_lname", "defs_qualname", "refs_name"} <= indexes(db)
    assert snapshot(db) == clean_load(src, tmp_path)


CORRUPTIONS = {
    "truncated": lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size // 2]),
    "zeroed-header": lambda db: db.write_bytes(b"\0" * 100 + db.read_bytes()[100:]),
    "text-file": lambda db: db.write_text("not a database\n"),
    "garbage-pages": lambda db: db.write_bytes(
        db.read_bytes()[:8192] + os.urandom(4096 * 4) + db.read_bytes()[8192 + 4096 * 4 :]
    ),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_cache_is_detected_named_and_rebuilt(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    src = make_tree(tmp_path / "src", files=60)
    settings = IndexSettings(cache_dir=tmp_path / "cache", watch=False)
    with load(src, settings):
        pass
    db = db_path_for(settings.cache_dir or tmp_path, src.resolve())
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    CORRUPTIONS[kind](db)
    caplog.set_level(logging.WARNING)
    with load(src, settings) as repo:
        repo.repair_if_corrupt()
        assert repo.report.files == 60 or repo.store.check() is None
        assert repo.grep("def func_3_4")
        assert repo.symbols("Thing7")
    assert snapshot(db) == clean_load(src, tmp_path)
    assert str(db) in caplog.text


def test_a_directory_in_place_of_the_cache_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", files=3)
    settings = IndexSettings(cache_dir=tmp_path / "cache", watch=False)
    db = db_path_for(tmp_path / "cache", src.resolve())
    db.mkdir(parents=True)
    with pytest.raises(IndexCorrupted) as err:
        load(src, settings)
    assert str(db) in str(err.value) and "\n" not in str(err.value)


_CLOSE_UNDER_QUERIES = r"""
import sys, threading
from pathlib import Path
from rlm_mcp.index.store.sqlite.store import SQLiteStore

SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<20000) "
        "SELECT sum(x) FROM c")
for i in range(60):
    store = SQLiteStore(Path(sys.argv[1]) / f"s{i % 3}.sqlite")
    running = [threading.Event(), threading.Event()]
    errors = []

    def query(n):
        try:
            while True:
                store.meta("k")
                running[n].set()
                store._conn.execute(SLOW).fetchall()
        except Exception as exc:  # the closed store refuses the next query
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=query, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for r in running:
        r.wait()
    store.close()
    for t in threads:
        t.join()
    assert errors == ["ProgrammingError"] * 2, errors
print("closed", i + 1)
"""


def test_closing_a_store_while_other_threads_query_it_neither_crashes_nor_lets_them_go_on(
    tmp_path: Path,
) -> None:
    """The CLI closes the store while a repo map's background write may be running."""
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _CLOSE_UNDER_QUERIES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "closed 60"
