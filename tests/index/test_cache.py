"""The SQLite cache: warm reloads, incremental re-parsing, schema versions, two processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.index.store.sqlite import db_path_for
from tests.index.index_helpers import write


def _tree(n: int) -> dict[str, str | bytes]:
    return {f"pkg/m{i}.py": f"def f{i}():\n    return g{i}()\n" for i in range(n)}


def test_a_fresh_checkout_parses_only_the_files_whose_content_changed(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    """CI checks a pull request out: every mtime is new, two files differ."""
    write(tmp_path, {**_tree(20), "blob.bin": b"\0" * 10, "app.min.js": "x=1;" * 3000})
    first = loader(tmp_path).report
    assert first.skipped_by_reason() == {"binary": 1, "generated": 1}
    write(tmp_path, {"pkg/m3.py": "def changed():\n    pass\n", "pkg/m7.py": "X = 1\n"})
    later = 2_000_000_000
    for p in tmp_path.rglob("*"):
        if p.is_file() and ".git" not in p.parts:
            os.utime(p, (later, later))
    again = loader(tmp_path).report
    assert (again.parsed, again.reused, again.removed) == (2, 20, 0)
    assert again.skipped_by_reason() == {"binary": 1, "generated": 1}


def test_reloading_an_unchanged_repository_parses_no_files(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, {**_tree(20), "blob.bin": b"\0" * 10})
    first = loader(tmp_path).report
    assert first.parsed == 21
    again = loader(tmp_path).report
    assert (again.parsed, again.reused, again.removed) == (0, 21, 0)
    assert again.files == first.files and again.symbols == first.symbols
    assert again.skipped_by_reason() == {"binary": 1}


def test_one_changed_file_is_reparsed_alone(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, _tree(10))
    loader(tmp_path)
    write(tmp_path, {"pkg/m3.py": "def renamed():\n    pass\n"})
    repo = loader(tmp_path)
    assert repo.report.parsed == 1
    assert repo.definition("f3") == []
    assert [d.path for d in repo.definition("renamed")] == ["pkg/m3.py"]


def test_a_touched_but_identical_file_is_not_reparsed(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, _tree(3))
    loader(tmp_path)
    p = tmp_path / "pkg/m1.py"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert loader(tmp_path).report.parsed == 0


def test_removed_files_are_deleted_from_the_store(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, _tree(4))
    loader(tmp_path)
    (tmp_path / "pkg/m2.py").unlink()
    repo = loader(tmp_path)
    assert repo.report.removed == 1
    assert "pkg/m2.py" not in repo.files()
    assert repo.definition("f2") == [] and repo.references("g2") == []


def test_a_schema_version_mismatch_rebuilds_the_cache(
    tmp_path: Path, settings: IndexSettings
) -> None:
    write(tmp_path, _tree(3))
    load(tmp_path, settings).close()
    assert settings.cache_dir is not None
    db = db_path_for(settings.cache_dir, tmp_path.resolve())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    conn.close()
    with load(tmp_path, settings) as repo:
        assert repo.report.parsed == 3
        assert len(repo.definition("f1")) == 1


def test_many_files_are_parsed_in_a_process_pool_with_the_same_result(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, _tree(260))
    repo = loader(tmp_path)
    assert repo.report.parsed == 260 and repo.report.files == 260
    assert len(repo.definition("f259")) == 1
    assert repo.report.symbols == 260


CHILD = """
import sys
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), workers=1))
print(repo.report.files, len(repo.definition("f7")))
repo.close()
"""


def test_two_processes_can_load_the_same_repository_at_once(
    tmp_path: Path, settings: IndexSettings
) -> None:
    root = tmp_path / "repo"
    write(root, _tree(150))
    cmd = [sys.executable, "-c", CHILD, str(root), str(settings.cache_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
        assert out.split() == [b"150", b"1"]
    with load(root, settings) as repo:
        assert repo.report.parsed == 0 and repo.report.files == 150
