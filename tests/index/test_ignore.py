"""Gitignore semantics, with git and without it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.index import Repository
from rlm_mcp.index.discover.ignore import IgnoreMatcher, compile_pattern
from tests.index.index_helpers import git, write


def _matches(pattern: str, path: str, is_dir: bool = False) -> bool:
    pat = compile_pattern(pattern)
    assert pat is not None
    if pat.dir_only and not is_dir:
        return False
    return bool(pat.regex.match(path))


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.log", "a/b/x.log", True),
        ("/top.txt", "top.txt", True),
        ("/top.txt", "sub/top.txt", False),
        ("doc/*.md", "doc/a.md", True),
        ("doc/*.md", "doc/x/a.md", False),
        ("**/cache", "a/b/cache", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("out/**", "out/x/y", True),
        ("file[0-9].txt", "file3.txt", True),
        ("file[!0-9].txt", "file3.txt", False),
        ("file[!0-9].txt", "filex.txt", True),
        ("\\#hash", "#hash", True),
        ("\\!bang", "!bang", True),
        ("sp\\ ", "sp ", True),
        ("trailing   ", "trailing", True),
        ("?.c", "a.c", True),
        ("?.c", "ab.c", False),
    ],
)
def test_patterns_follow_gitignore_syntax(pattern: str, path: str, expected: bool) -> None:
    assert _matches(pattern, path) is expected


def test_dir_only_patterns_match_directories_not_files() -> None:
    assert _matches("build/", "build", is_dir=True)
    assert not _matches("build/", "build", is_dir=False)


def test_comments_and_blank_lines_compile_to_nothing() -> None:
    assert compile_pattern("# comment") is None
    assert compile_pattern("   ") is None


TREE: dict[str, str | bytes] = {
    ".gitignore": "*.log\nbuild/\n!keep.log\n/only_root.txt\n",
    "a.py": "x = 1\n",
    "debug.log": "log\n",
    "keep.log": "kept\n",
    "only_root.txt": "r\n",
    "sub/only_root.txt": "s\n",
    "build/out.py": "y = 2\n",
    "sub/.gitignore": "*.tmp\n!important.log\nsecret/\n",
    "sub/x.tmp": "t\n",
    "sub/important.log": "i\n",
    "sub/secret/s.py": "z = 3\n",
    "sub/deep/y.tmp": "t\n",
    "excluded.txt": "e\n",
    "notes.md": "n\n",
    ".rlmignore": "notes.md\n",
}
EXPECTED = {
    ".gitignore",
    ".rlmignore",
    "a.py",
    "keep.log",
    "sub/only_root.txt",
    "sub/.gitignore",
    "sub/important.log",
}


def test_walker_honours_nested_gitignore_negation_and_rlmignore_outside_git(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    root = tmp_path / "repo"
    write(root, TREE)
    write(root, {".git/info/exclude": "excluded.txt\n"})
    repo = loader(root)
    assert not repo.report.git
    assert set(repo.files()) == EXPECTED


def test_git_work_tree_lists_tracked_and_untracked_not_ignored_files(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    write(root, TREE)
    write(root, {".git/info/exclude": "excluded.txt\n", "untracked.py": "u = 1\n"})
    git(root, "add", "a.py", ".gitignore")
    git(root, "commit", "-qm", "init")
    repo = loader(root)
    assert repo.report.git
    assert set(repo.files()) == EXPECTED | {"untracked.py"}
    assert not any(p.startswith(".git/") for p in repo.files())


def test_git_and_walker_agree_on_the_file_set(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    plain, repo_dir = tmp_path / "plain", tmp_path / "git"
    for d in (plain, repo_dir):
        write(d, TREE)
    git(repo_dir, "init", "-q")
    assert set(loader(plain).files()) == set(loader(repo_dir).files())


def test_matcher_never_reincludes_files_below_an_ignored_directory(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "gen/\n!gen/keep.py\n", "gen/keep.py": ""})
    m = IgnoreMatcher(tmp_path)
    assert m.is_ignored("gen/keep.py")
    assert m.is_ignored(".git/config")
    assert not m.is_ignored("src/a.py")
