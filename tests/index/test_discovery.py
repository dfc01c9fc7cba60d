"""The fast paths of a warm load give what the plain per-file code gives.

Discovery stats a regular file inline and hands everything else to
``stat_candidate``; git's listing is decoded in one piece; the file table is
built from raw rows and, after a sync, updated from the rows it wrote. Each
must be indistinguishable from the straightforward version it replaced.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load, sync
from rlm_mcp.index.discover import walker
from rlm_mcp.index.discover.walker import (
    Candidate,
    Discovery,
    GitListing,
    discover,
    git_list,
    stat_candidate,
    stat_candidates,
)
from rlm_mcp.index.model import FileEntry, file_entries
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.sqlite import SQLiteStore
from tests.index.index_helpers import git, write
from tests.pg_cluster import postgres_store


def _odd_tree(root: Path, outside: Path) -> list[str]:
    """Every kind of path discovery meets; returns them, plus two that do not exist."""
    write(root, {"a.py": "A = 1\n", "dir/b.py": "B = 2\n", "dir/sub/c.txt": "c\n", "empty": ""})
    write(outside, {"x.py": "X = 1\n"})
    os.symlink("a.py", root / "to_file")
    os.symlink("dir", root / "to_dir")
    os.symlink("self_loop", root / "self_loop")
    os.symlink("missing", root / "dangling")
    os.symlink(str(outside / "x.py"), root / "outside")
    os.symlink("..", root / "dir" / "up")
    os.mkfifo(root / "fifo")
    return [
        "a.py",
        "dir",  # a directory where git expects a file (a submodule)
        "dir/b.py",
        "dir/sub/c.txt",
        "dir/up",
        "empty",
        "to_file",
        "to_dir",
        "self_loop",
        "dangling",
        "outside",
        "fifo",
        "gone.py",  # listed, then deleted before the stat
        "a.py/under_a_file",  # ENOTDIR
    ]


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "no-follow"])
def test_stat_candidates_gives_what_stat_candidate_gives_for_every_kind_of_path(
    tmp_path: Path, follow: bool
) -> None:
    root = tmp_path / "root"
    rels = _odd_tree(root, tmp_path / "outside")
    expected = Discovery()
    for rel in rels:
        res = stat_candidate(str(root), rel, follow_symlinks=follow)
        if isinstance(res, Candidate):
            expected.candidates.append(res)
        elif res is not None:
            expected.skipped.append(res)
    got = Discovery()
    stat_candidates(str(root), rels, got, follow_symlinks=follow)
    assert got == expected
    assert [c.path for c in got.candidates] == ["a.py", "dir/b.py", "dir/sub/c.txt", "empty"]
    assert got.candidates[1].abspath == os.path.join(str(root), "dir/b.py")
    reasons = {s.path: s.reason for s in got.skipped}
    assert reasons["dir"] == "not_regular" and reasons["fifo"] == "not_regular"
    assert "gone.py" not in reasons and "a.py/under_a_file" in reasons


def test_stat_candidates_under_the_filesystem_root_joins_paths_as_os_path_join(
    tmp_path: Path,
) -> None:
    rel = str(tmp_path / "f.py").lstrip("/")
    write(tmp_path, {"f.py": "F = 1\n"})
    got = Discovery()
    stat_candidates("/", [rel], got)
    assert got.candidates == [stat_candidate("/", rel)]
    assert got.candidates[0].abspath == str(tmp_path / "f.py")


def test_git_listing_decodes_names_as_fsdecode_and_lists_a_conflicted_path_once(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q")
    odd = [b"caf\xc3\xa9.py", b"bad\xff\xfe.py", b"sp ace.py", b"tab\tname.py", b"\xe2\x82.py"]
    for raw in odd:
        (tmp_path / os.fsdecode(raw)).write_text("X = 1\n")
    write(tmp_path, {"both.py": "base\n"})
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "other")
    write(tmp_path, {"both.py": "other\n"})
    git(tmp_path, "commit", "-qam", "other")
    git(tmp_path, "checkout", "-q", "main")
    write(tmp_path, {"both.py": "main\n", "untracked.py": "U = 1\n"})
    git(tmp_path, "commit", "-qam", "main")
    with pytest.raises(subprocess.CalledProcessError):  # the merge stops on the conflict
        git(tmp_path, "merge", "-q", "other")
    listed = git_list(tmp_path)
    assert listed is not None
    assert sorted(listed) == sorted([os.fsdecode(raw) for raw in odd] + ["both.py", "untracked.py"])
    assert listed.count("both.py") == 1
    assert GitListing(tmp_path).result() == listed


def test_git_listing_through_a_pipe_a_timeout_and_a_close_before_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path, {"a.py": "A = 1\n", "b/c.py": "C = 1\n"})
    assert git_list(tmp_path) == ["a.py", "b/c.py"]

    def no_temp_dir() -> None:
        raise OSError(30, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "TemporaryFile", no_temp_dir)  # the module walker uses
        assert git_list(tmp_path) == ["a.py", "b/c.py"]
        piped = GitListing(tmp_path)
        piped.close()
        assert piped.result() is None
    slow = tmp_path.parent / f"{tmp_path.name}-slow-git"
    slow.mkdir()
    (slow / "git").write_text("#!/bin/sh\nexec sleep 30\n")
    (slow / "git").chmod(0o755)
    with monkeypatch.context() as m:
        # A git still running at the deadline (a zero timeout alone races a fast git).
        m.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
        m.setattr(walker, "GIT_TIMEOUT", 0.2)
        started = time.monotonic()
        assert git_list(tmp_path) is None  # git is stopped, not waited for
        assert time.monotonic() - started < 10
    early = GitListing(tmp_path)
    early.close()
    assert early.result() is None
    assert git_list(tmp_path / "b") == ["c.py"]
    assert git_list(tmp_path.parent / "not-a-work-tree-here") is None


def test_discovery_from_a_listing_under_way_equals_discovery_that_lists_itself(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    _odd_tree(root, tmp_path / "outside")
    write(
        root, {".gitignore": "ignored/\n", "ignored/x.py": "I = 1\n", "sub/.rlmignore": "*.txt\n"}
    )
    write(root, {"sub/keep.py": "K = 1\n", "sub/drop.txt": "d\n"})
    git(root, "init", "-q")
    git(root, "add", "a.py", "dir/b.py")
    plain = discover(root)
    assert plain.git
    assert discover(root, listing=GitListing(root)) == plain
    paths = [c.path for c in plain.candidates]
    assert paths == sorted(paths)
    assert "sub/keep.py" in paths and "sub/drop.txt" not in paths and "ignored/x.py" not in paths


def test_file_entries_equal_the_dataclass_built_one_field_at_a_time() -> None:
    rows: list[tuple[str, int, int, str | None, int, int, object]] = [
        ("b.py", 10, 2, "python", 3, 4, 0),
        ("a/z.rs", 5, 6, "rust", 7, 8, 1),
        ("a.md", 1, 1, None, 0, 0, False),
        ("a/b", 9, 9, None, 1, 1, True),
    ]
    got = file_entries(list(rows))
    want = {r[0]: FileEntry(*r[:6], bool(r[6])) for r in sorted(rows)}
    assert got == want
    assert list(got) == ["a.md", "a/b", "a/z.rs", "b.py"]
    assert all(type(e.invalid_utf8) is bool for e in got.values())
    assert hash(got["b.py"]) == hash(want["b.py"]) and got["b.py"] is not want["b.py"]


def _bump(p: Path, seconds: int = 5) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


@pytest.mark.parametrize("reread_all", [None, 0], ids=["patched", "reread"])
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_file_table_after_a_sync_equals_a_fresh_load_of_the_same_store(
    tmp_path: Path,
    settings: IndexSettings,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    reread_all: int | None,
) -> None:
    """The table is patched with the rows a sync wrote, not read back whole (``patched``);
    past ``REREAD_ALL`` written rows it is read back whole (``reread``)."""
    if reread_all is not None:
        monkeypatch.setattr(sync, "REREAD_ALL", reread_all)
    root = tmp_path / "root"
    write(root, {f"pkg/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(12)})
    write(root, {"blob.bin": b"\0" * 10, "notes.txt": "n\n", "dup.py": "D = 1\n"})
    os.symlink("dup.py", root / "link.py")

    def store() -> IndexStore:
        return SQLiteStore(tmp_path / "i.sqlite") if kind == "sqlite" else postgres_store(tmp_path)

    def check(repo: Repository) -> None:
        with load(root, settings, store=store()) as fresh:
            assert fresh.report.parsed == 0
            assert repo.entries() == fresh.entries()
            assert list(repo.entries()) == list(fresh.entries())
            assert dict(repo.table.skips) == dict(fresh.table.skips)
            assert list(repo.table.skips) == list(fresh.table.skips)
            mine, theirs = repo.report, fresh.report
            assert (mine.files, mine.bytes, mine.lines, mine.tokens, mine.symbols) == (
                theirs.files,
                theirs.bytes,
                theirs.lines,
                theirs.tokens,
                theirs.symbols,
            )
            assert (mine.languages, mine.invalid_utf8) == (theirs.languages, theirs.invalid_utf8)

    with load(root, settings, store=store()) as repo:
        check(repo)
        write(root, {"pkg/m1.py": "def grown():\n    return 'longer now'\n"})  # new size
        write(root, {"pkg/m2.py": "def f2():\n    return 9\n"})  # same size, new text
        _bump(root / "pkg/m2.py")
        _bump(root / "pkg/m3.py")  # same text, new mtime
        write(root, {"pkg/m4.py": b"\0binary now"})  # indexed, then skipped
        write(root, {"blob.bin": "TEXT_NOW = 1\n"})  # skipped, then indexed
        write(root, {"a_new.py": "NEW = 1\n", "zz/last.py": "LAST = 1\xff\n".encode("latin-1")})
        (root / "pkg/m5.py").unlink()
        report = repo.refresh()
        assert (report.parsed, report.removed) == (6, 1)
        check(repo)
        m3 = repo.entry("pkg/m3.py")
        assert m3 is not None and m3.mtime_ns == (root / "pkg/m3.py").stat().st_mtime_ns
        assert "pkg/m4.py" in repo.table.skips and "blob.bin" in repo.entries()
        assert repo.report.invalid_utf8 == ["zz/last.py"]

        time.sleep(0.01)
        write(root, {"pkg/m6.py": "def f6():\n    return 'watched'\n", "w.py": "W = 1\n"})
        write(root, {"pkg/m8.py": b"\0now binary too"})
        (root / "pkg/m7.py").unlink()
        (root / "blob.bin").unlink()
        repo.apply_changes({"pkg/m6.py", "w.py", "pkg/m8.py"}, {"pkg/m7.py", "blob.bin"})
        check(repo)
        assert "w.py" in repo.entries() and "pkg/m7.py" not in repo.entries()
        assert "pkg/m8.py" in repo.table.skips and repo.report.files == len(repo.entries())
