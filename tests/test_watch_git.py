"""Freshness that follows git: a branch switch, ``git stash`` and a worktree, with real git.

A git operation is one change set (one rescan, file events folded in); while it runs or
before it is taken up, ``pending`` says so, and ``rlm_repos`` never reports ``fresh``
until the index matches the new branch, symbols included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.server import create_server
from rlm_mcp.watch import RepositoryWatcher
from rlm_mcp.watch.git import GitTracker, git_dirs, marks
from tests.mcp.conftest import make_settings
from tests.mcp.results import structured
from tests.polling import wait_until

pytestmark = [
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]

DEADLINE = 60.0


def git(root: Path, *args: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(root.parent),
    }
    out = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout


def two_branches(root: Path, files: int) -> Path:
    """``main`` defines ``on_main_I`` in ``files`` modules; ``other`` rewrites every one of
    them to define ``on_other_I`` instead."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for i in range(files):
        path = root / f"pkg{i % 25}" / f"mod{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"def on_main_{i}():\n    return {i}\n")
    (root / "keep.py").write_text("def kept():\n    return 0\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main")
    git(root, "checkout", "-q", "-b", "other")
    for i in range(files):
        (root / f"pkg{i % 25}" / f"mod{i}.py").write_text(f"def on_other_{i}():\n    return {i}\n")
    git(root, "commit", "-q", "-am", "other")
    git(root, "checkout", "-q", "main")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> IndexSettings:
    return IndexSettings(cache_dir=tmp_path / "cache", workers=2)


@pytest.fixture
def small(tmp_path: Path, settings: IndexSettings) -> Iterator[tuple[Path, Repository]]:
    root = two_branches(tmp_path / "small", 60)
    repo = load(root, settings)
    yield root, repo
    repo.close()


# -- git's marks -----------------------------------------------------------------------


def test_the_marks_move_with_a_switch_a_commit_and_a_stash(tmp_path: Path) -> None:
    root = two_branches(tmp_path / "r", 3)
    dirs = git_dirs(root)
    assert dirs is not None and dirs.git_dir == root / ".git" == dirs.common_dir
    first = marks(dirs)
    assert first is not None and first.head == "ref: refs/heads/main" and first.commit
    git(root, "checkout", "-q", "other")
    switched = marks(dirs)
    assert switched is not None and not switched.same_state(first)
    (root / "keep.py").write_text("def changed():\n    return 1\n")
    git(root, "stash", "-q")
    stashed = marks(dirs)
    assert stashed is not None and stashed.stash and not stashed.same_state(switched)
    git(root, "pack-refs", "--all")  # refs in packed-refs read the same
    packed = marks(dirs)
    assert packed is not None and packed.same_state(stashed)
    git(root, "checkout", "-q", "--detach")
    detached = marks(dirs)
    assert detached is not None and detached.head == detached.commit == switched.commit


def test_a_tree_that_is_no_git_work_tree_has_no_marks(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert git_dirs(tmp_path / "plain") is None
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / ".git").write_text("not a gitdir line\n")
    assert git_dirs(tmp_path / "odd") is None


def test_a_held_index_lock_is_pending_and_holds_until_it_goes(tmp_path: Path) -> None:
    root = two_branches(tmp_path / "r", 2)
    tracker = GitTracker.at(root)
    assert tracker is not None
    tracker.start()
    assert tracker.pending() == 0 and tracker.step() is None
    lock = root / ".git" / "index.lock"
    lock.write_text("")
    assert tracker.pending() == 1 and tracker.step() == "hold"
    lock.unlink()
    assert tracker.pending() == 0 and tracker.step() is None


# -- the watcher -------------------------------------------------------------------------


def test_a_branch_switch_is_one_rescan_and_pending_until_applied(
    small: tuple[Path, Repository],
) -> None:
    root, repo = small
    with RepositoryWatcher(repo, debounce=0.2) as w:
        assert w.pending == 0
        git(root, "checkout", "-q", "other")
        # Git has moved: pending at once, before any file event could have been applied.
        assert w.pending >= 1
        wait_until(lambda: w.pending == 0, DEADLINE, "the switch to be applied")
        assert w.git_changes == 1
        assert repo.definition("on_other_59") and not repo.definition("on_main_59")
        assert len(repo.files("pkg*/*.py")) == 60
        git(root, "checkout", "-q", "main")
        wait_until(lambda: w.pending == 0 and bool(repo.definition("on_main_0")), DEADLINE)
        assert w.git_changes == 2 and not repo.definition("on_other_0")


def test_a_polling_watcher_takes_a_switch_up_at_once_not_at_its_next_poll(
    small: tuple[Path, Repository],
) -> None:
    """Out of inotify budget a big tree is polled seldom (up to 30 s apart); git's marks are
    read every 0.1 s regardless, so a switch is pending and applied long before a poll."""
    root, repo = small
    with RepositoryWatcher(repo, debounce=0.2, force_polling=True, poll_interval=30) as w:
        wait_until(lambda: w.mode == "polling", DEADLINE)
        git(root, "checkout", "-q", "other")
        assert w.pending >= 1
        wait_until(lambda: w.pending == 0 and bool(repo.definition("on_other_7")), 10.0)
        assert not repo.definition("on_main_7")


def test_git_stash_and_stash_pop_reach_the_index(small: tuple[Path, Repository]) -> None:
    root, repo = small
    with RepositoryWatcher(repo, debounce=0.2) as w:
        (root / "keep.py").write_text("def stashed_away():\n    return 1\n")
        wait_until(lambda: bool(repo.definition("stashed_away")) and w.pending == 0, DEADLINE)
        git(root, "stash", "-q")
        assert w.pending >= 1
        wait_until(lambda: w.pending == 0 and bool(repo.definition("kept")), DEADLINE)
        assert not repo.definition("stashed_away")
        git(root, "stash", "pop", "-q")
        wait_until(lambda: w.pending == 0 and bool(repo.definition("stashed_away")), DEADLINE)


def test_a_worktree_is_its_own_repository(tmp_path: Path, settings: IndexSettings) -> None:
    main = two_branches(tmp_path / "main", 20)
    tree = tmp_path / "wt"
    git(main, "worktree", "add", "-q", str(tree), "other")
    dirs = git_dirs(tree)
    assert dirs is not None and dirs.git_dir != main / ".git"
    assert dirs.common_dir == (main / ".git").resolve()
    a, b = load(main, settings), load(tree, settings)
    try:
        assert a.store.location != b.store.location
        with RepositoryWatcher(a, debounce=0.2) as wa, RepositoryWatcher(b, debounce=0.2) as wb:
            git(main, "checkout", "-q", "-b", "third")  # same commit: nothing in b moves
            git(tree, "checkout", "-q", "--detach", "main")
            assert wb.pending >= 1
            wait_until(lambda: wb.pending == 0 and bool(b.definition("on_main_3")), DEADLINE)
            wait_until(lambda: wa.pending == 0, DEADLINE)
            assert a.definition("on_main_3") and not a.definition("on_other_3")
            assert not b.definition("on_other_3")
    finally:
        a.close()
        b.close()


# -- what a client is told ----------------------------------------------------------------


async def test_no_status_claims_fresh_until_a_2100_file_switch_has_its_symbols(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "allowed"
    root = two_branches(workspace / "big", 2_100)  # over the texts-first threshold
    server = create_server(make_settings(tmp_path, workspace, None))
    seen: list[dict[str, Any]] = []

    async def status(client: Client) -> dict[str, Any]:
        listed = structured(await client.call_tool("rlm_repos", {}))["repositories"]
        return dict(next(r for r in listed if r["name"] == "big"))

    async def symbol_counts(client: Client, prefix: str) -> int:
        query = {"query": prefix, "match": "prefix", "limit": 5_000}
        page = structured(await client.call_tool("rlm_symbols", query))
        return len(page["symbols"]) + int(page.get("remaining") or 0)

    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        with anyio.fail_after(DEADLINE):
            while not (await status(client))["fresh"]:
                await anyio.sleep(0.05)
        switched = threading.Event()

        def checkout() -> None:
            git(root, "checkout", "-q", "other")
            switched.set()

        switch = threading.Thread(target=checkout)
        switch.start()
        with anyio.fail_after(DEADLINE * 2):
            while True:
                done = switched.is_set()  # before the status: a status from before can be fresh
                now = await status(client)
                seen.append(now)
                if now["fresh"] and done:
                    # Claimed fresh: the index must be the new branch, symbols and all.
                    assert await symbol_counts(client, "on_other_") == 2_100
                    assert await symbol_counts(client, "on_main_") == 0
                    break
                if done:
                    assert now["pending_changes"] or now.get("indexing") or now.get("partial")
                await anyio.sleep(0.05)
        switch.join()
    after = [s for s in seen if not s["fresh"]]
    assert after, "no status between the switch and the end was marked not fresh"
