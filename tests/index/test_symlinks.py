"""A symlink is never indexed itself: its target is, once, under its real path.

Git stores a symlink as a link, not as its target's files; the walker used
outside a work tree follows the same policy, so both discoveries agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.index import Repository
from tests.index.index_helpers import git, write


def _skips(repo: Repository) -> dict[str, tuple[str, str]]:
    return {s.path: (s.reason, s.detail) for s in repo.report.skipped}


def _tree(root: Path) -> None:
    write(root, {"real/a.py": "def alpha():\n    pass\n", "real/sub/b.py": "BETA = 1\n"})
    os.symlink("real", root / "link")
    os.symlink("../a.py", root / "real" / "sub" / "alias.py")
    os.symlink("..", root / "real" / "loop")


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_a_symlinked_directory_is_indexed_once_under_its_real_path(
    tmp_path: Path, loader: Callable[..., Repository], use_git: bool
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    _tree(root)
    if use_git:
        git(root, "init", "-q")
        git(root, "add", "-A")
    repo = loader(root)
    assert repo.report.git is use_git
    assert repo.files() == ["real/a.py", "real/sub/b.py"]
    assert [d.path for d in repo.symbols("alpha", match="exact")] == ["real/a.py"]
    skips = _skips(repo)
    assert skips["link"] == ("symlink_duplicate", "same as real/")
    assert skips["real/sub/alias.py"] == ("symlink_duplicate", "same as real/a.py")
    assert skips["real/loop"][0] == "symlink_loop"
    assert set(skips) == {"link", "real/sub/alias.py", "real/loop"}


def test_plain_and_git_discovery_agree_on_symlinks(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    plain, tracked = tmp_path / "plain", tmp_path / "tracked"
    for root in (plain, tracked):
        root.mkdir()
        _tree(root)
        os.symlink("real", root / "z_link")
        write(root, {".gitignore": "ignored_link/\n"})
        os.symlink("real", root / "ignored_link")
    git(tracked, "init", "-q")
    git(tracked, "add", "-A")
    a, b = loader(plain), loader(tracked)
    assert a.files() == b.files()
    assert a.report.skipped == b.report.skipped
    # Like git, a directory-only pattern does not match a symlink.
    assert _skips(a)["ignored_link"] == ("symlink_duplicate", "same as real/")


def test_a_symlink_to_an_enclosing_directory_is_a_loop(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, {"a/x.py": "X = 1\n"})
    os.symlink("..", tmp_path / "a" / "loop")
    os.symlink(".", tmp_path / "a" / "self")
    repo = loader(tmp_path)
    skips = _skips(repo)
    assert skips["a/loop"] == ("symlink_loop", "points to an enclosing directory: ./")
    assert skips["a/self"] == ("symlink_loop", "points to an enclosing directory: a/")
    assert repo.files() == ["a/x.py"]


def test_a_file_reached_through_a_symlinked_directory_is_not_indexed_again(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, {"real/a.py": "def alpha():\n    pass\n"})
    os.symlink("real", tmp_path / "link")
    repo = loader(tmp_path)
    repo.apply_changes({"link/a.py", "link"}, set())
    assert repo.files() == ["real/a.py"]
    assert _skips(repo)["link"] == ("symlink_duplicate", "same as real/")
