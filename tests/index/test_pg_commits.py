"""Index by commit: a new commit starts from the nearest indexed one and parses only the diff."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.index.model import DefQuery
from rlm_mcp.index.repository import load
from rlm_mcp.index.store.open import nearest_commit, repo_identity, worktree_commit
from rlm_mcp.index.store.postgres.store import PostgresStore
from tests.cli.cli_helpers import isolated_env, run_cli
from tests.index.index_helpers import GIT_ENV, git, write
from tests.pg_cluster import shared


def _module(i: int, extra: str = "") -> str:
    return (
        f'"""Module {i}."""\n\n\ndef work_{i}(x):\n    """Do step {i} of the job."""\n'
        f"    return finish_{i}(x){extra}\n\n\ndef finish_{i}(x):\n    return x\n"
    )


def _repo(root: Path, n: int = 30) -> Path:
    write(root, {f"src/m{i}.py": _module(i) for i in range(n)})
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "A")
    return root


def _cli_env(tmp_path: Path) -> dict[str, str]:
    return {**isolated_env(tmp_path), **GIT_ENV, "RLM_INDEX_URL": shared().url}


def test_a_new_commit_starts_from_the_nearest_indexed_one(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    env = _cli_env(tmp_path)
    first = run_cli("index", str(root), "--commit", "--json", env=env)
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    assert (a["parsed"], a["seeded_from"]) == (30, None)
    sha_a = a["commit"]

    write(root, {"src/m1.py": _module(1, " + 1"), "src/m2.py": _module(2, " * 2")})
    write(root, {"src/new.py": _module(99)})
    os.remove(root / "src" / "m3.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "B")
    second = run_cli("index", str(root), "--commit", "HEAD", env=env)
    assert second.returncode == 0, second.stderr
    assert f"started from the index of {sha_a[:12]}" in second.stdout
    assert "3 changed files parsed" in second.stdout

    # The same commit again: nothing to parse, nothing copied.
    third = run_cli("index", str(root), "--commit", "--json", env=env)
    assert json.loads(third.stdout)["parsed"] == 0

    # What the diff produced equals a cold index of the same tree.
    sha_b = git(root, "rev-parse", "HEAD").strip()
    settings = IndexSettings(index_url=shared().url, workers=1, watch=False, commit=sha_b)
    warm = load(root, settings)
    cold_root = tmp_path / "cold"
    shutil.copytree(root, cold_root, ignore=shutil.ignore_patterns(".git"))
    cold = load(cold_root, settings, store=PostgresStore(shared().url, f"cold:{tmp_path}"))
    try:
        assert warm.report.parsed == 0
        assert warm.entries().keys() == cold.entries().keys()
        q = DefQuery("all")
        assert warm.store.find_defs(q) == cold.store.find_defs(q)
        assert warm.store.edges() == cold.store.edges()
        terms = ["work", "step", "job", "finish"]
        assert sorted(warm.store.text_search(terms, 1000), key=repr) == sorted(
            cold.store.text_search(terms, 1000), key=repr
        )
    finally:
        warm.close()
        cold.close()


def test_a_dirty_working_tree_gets_its_own_index_seeded_from_head(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo", 12)
    sha = git(root, "rev-parse", "HEAD").strip()
    assert worktree_commit(root) == sha
    url = shared().url
    clean = load(root, IndexSettings(index_url=url, workers=1, commit=sha, watch=False))
    clean.close()
    write(root, {"src/m4.py": _module(4, " - 4")})
    dirty_name = worktree_commit(root)
    assert dirty_name.startswith(sha + "+")
    dirty = load(root, IndexSettings(index_url=url, workers=1, commit=dirty_name, watch=False))
    try:
        assert (dirty.report.parsed, dirty.report.reused) == (1, 11)
    finally:
        dirty.close()
    # The clean commit's index still holds the committed text.
    pinned = PostgresStore(url, repo_identity(root, sha))
    try:
        assert "- 4" not in (pinned.text("src/m4.py") or "")
    finally:
        pinned.close()


def test_index_commit_refuses_a_tree_that_is_not_at_that_commit(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo", 3)
    write(root, {"src/m0.py": _module(0, " + 0")})
    out = run_cli("index", str(root), "--commit", env=_cli_env(tmp_path))
    assert out.returncode == 2
    assert "working tree" in out.stderr


def test_the_nearest_commit_counts_commits_on_both_sides(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo", 2)
    shas = [git(root, "rev-parse", "HEAD").strip()]
    for i in range(3):
        write(root, {f"src/x{i}.py": f"x = {i}\n"})
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"c{i}")
        shas.append(git(root, "rev-parse", "HEAD").strip())
    assert nearest_commit(root, shas[3], [shas[0], shas[2]]) == shas[2]
    assert nearest_commit(root, shas[1], [shas[0], shas[3]]) == shas[0]
    assert nearest_commit(root, shas[1], ["0" * 40]) is None


def test_an_overlay_on_the_nearest_commit_stores_only_the_diff_and_reads_like_a_cold_load(
    tmp_path: Path,
) -> None:
    root = _repo(tmp_path / "repo", 20)
    url = shared().url
    sha_a = git(root, "rev-parse", "HEAD").strip()
    base = load(root, IndexSettings(index_url=url, workers=1, commit=sha_a, watch=False))
    base.close()
    write(root, {"src/m1.py": _module(1, " + 1"), "src/new.py": _module(99)})
    os.remove(root / "src" / "m3.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "B")
    sha_b = git(root, "rev-parse", "HEAD").strip()
    settings = IndexSettings(
        index_url=url, workers=1, commit=sha_b, commit_overlay=True, watch=False
    )
    pr = load(root, settings)
    cold_root = tmp_path / "cold"
    shutil.copytree(root, cold_root, ignore=shutil.ignore_patterns(".git"))
    cold = load(cold_root, settings, store=PostgresStore(url, f"cold-overlay:{tmp_path}"))
    try:
        assert isinstance(pr.store, PostgresStore) and pr.store.base_id is not None
        assert (pr.report.parsed, pr.report.removed) == (2, 1)
        assert pr.entries().keys() == cold.entries().keys()
        assert pr.store.file_rows().keys() == cold.store.file_rows().keys()
        q = DefQuery("all")
        assert pr.store.find_defs(q) == cold.store.find_defs(q)
        assert pr.store.refs("finish_1", 10) == cold.store.refs("finish_1", 10)
        assert pr.store.edges() == cold.store.edges()
        assert pr.store.ref_counts() == cold.store.ref_counts()
        assert pr.store.symbol_count() == cold.store.symbol_count()
        assert pr.store.text("src/m1.py") == cold.store.text("src/m1.py")
        assert pr.store.text("src/m3.py") is None
        terms = ["work", "step", "job", "finish"]
        assert sorted(pr.store.text_search(terms, 1000), key=repr) == sorted(
            cold.store.text_search(terms, 1000), key=repr
        )
        assert pr.grep(r"\+ 1$") == cold.grep(r"\+ 1$")
        assert pr.grep("def work_3") == []
        # The base commit's own index is untouched.
        again = PostgresStore(url, repo_identity(root, sha_a))
        try:
            assert again.text("src/m3.py") is not None and again.base_id is None
        finally:
            again.close()
    finally:
        pr.close()
        cold.close()


def test_index_commit_without_a_shared_index_is_a_usage_error(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo", 1)
    env = {**isolated_env(tmp_path), **GIT_ENV}
    out = run_cli("index", str(root), "--commit", env=env)
    assert out.returncode == 2
    assert "--index-url" in out.stderr
