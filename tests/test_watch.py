"""The watcher keeps the index fresh: edits, deletes, moves, ignore edits, bursts, root loss."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.watch import RepositoryWatcher
from tests.index.index_helpers import write
from tests.polling import wait_until

# watchdog warns when a new directory is both walked and reported; harmless, but the
# warnings-as-errors setting would turn it into a dead inotify thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

DEADLINE = 10.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    write(r, {"a.py": "def alpha():\n    pass\n", "b.py": "x = 1\n"})
    return r


@pytest.fixture
def repo(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    settings = IndexSettings(cache_dir=tmp_path_factory.mktemp("cache"), workers=2)
    r = load(root, settings)
    yield r
    r.close()


@pytest.fixture(params=["inotify", "polling"])
def watcher(request: pytest.FixtureRequest, repo: Repository) -> Iterator[RepositoryWatcher]:
    w = RepositoryWatcher(
        repo, debounce=0.05, force_polling=request.param == "polling", poll_interval=0.05
    )
    w.start()
    yield w
    w.stop()


def test_created_modified_and_deleted_files_reach_the_index(
    root: Path, repo: Repository, watcher: RepositoryWatcher
) -> None:
    write(root, {"new.py": "def fresh():\n    pass\n"})
    wait_until(lambda: bool(repo.definition("fresh")), timeout=DEADLINE)
    write(root, {"a.py": "def beta():\n    pass\n"})
    wait_until(
        lambda: bool(repo.definition("beta")) and not repo.definition("alpha"), timeout=DEADLINE
    )
    assert [h.path for h in repo.grep("def beta")] == ["a.py"]
    (root / "b.py").unlink()
    wait_until(lambda: "b.py" not in repo.files(), timeout=DEADLINE)


def test_moved_files_and_directories_are_reindexed_under_the_new_path(
    root: Path, repo: Repository, watcher: RepositoryWatcher
) -> None:
    (root / "a.py").rename(root / "moved.py")
    wait_until(lambda: repo.files() == ["b.py", "moved.py"], timeout=DEADLINE)
    write(root, {"d/one.py": "ONE = 1\n"})
    wait_until(lambda: "d/one.py" in repo.files(), timeout=DEADLINE)
    (root / "d").rename(root / "e")
    wait_until(
        lambda: "e/one.py" in repo.files() and "d/one.py" not in repo.files(), timeout=DEADLINE
    )


def test_editing_gitignore_changes_the_file_set(
    root: Path, repo: Repository, watcher: RepositoryWatcher
) -> None:
    write(root, {".gitignore": "b.py\n"})
    wait_until(lambda: "b.py" not in repo.files(), timeout=DEADLINE)
    write(root, {".gitignore": "\n"})
    wait_until(lambda: "b.py" in repo.files(), timeout=DEADLINE)
    write(root, {".rlmignore": "a.py\n"})
    wait_until(lambda: "a.py" not in repo.files(), timeout=DEADLINE)


def test_ignored_files_stay_out_of_the_index(
    root: Path, repo: Repository, watcher: RepositoryWatcher
) -> None:
    write(root, {".gitignore": "*.log\n"})
    wait_until(lambda: ".gitignore" in repo.files(), timeout=DEADLINE)
    v = repo.version
    write(root, {"noise.log": "x\n", "c.py": "y = 2\n"})
    wait_until(lambda: "c.py" in repo.files(), timeout=DEADLINE)
    assert repo.version > v
    assert "noise.log" not in repo.files()


class CountingApplies:
    """Wraps ``repo.apply_changes`` on one instance to count the passes."""

    def __init__(self, repo: Repository) -> None:
        self.real = repo.apply_changes
        self.sizes: list[int] = []

    def __call__(self, changed: set[str], deleted: set[str]) -> object:
        self.sizes.append(len(changed | deleted))
        return self.real(changed, deleted)


def test_a_burst_of_2000_files_lands_in_few_passes_and_matches_a_fresh_load(
    root: Path,
    repo: Repository,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applies = CountingApplies(repo)
    monkeypatch.setattr(repo, "apply_changes", applies)
    # A short max_delay: a burst that keeps adding paths must not be sliced by it.
    with RepositoryWatcher(repo, debounce=0.3, max_delay=0.3) as w:
        write(
            root, {f"burst/d{i % 20}/f{i}.py": f"def burst_{i}():\n    pass\n" for i in range(2000)}
        )
        (root / "b.py").unlink()
        wait_until(lambda: len(repo.files("burst/**")) == 2000 and w.pending == 0, timeout=30)
    assert 1 <= len(applies.sizes) <= 3, applies.sizes
    fresh = load(root, IndexSettings(cache_dir=tmp_path_factory.mktemp("fresh"), workers=2))
    try:
        assert repo.files() == fresh.files()
        grep = [(h.path, h.line) for h in repo.grep(r"def burst_1\d*\(", max_results=5000)]
        assert grep == [(h.path, h.line) for h in fresh.grep(r"def burst_1\d*\(", max_results=5000)]
        assert len(grep) == 1111
        assert len(repo.definition("burst_1999")) == 1
    finally:
        fresh.close()


def test_pending_counts_changes_noted_but_not_yet_applied(root: Path, repo: Repository) -> None:
    before = time.time()
    with RepositoryWatcher(repo, debounce=0.5) as w:
        assert w.pending == 0
        assert w.last_applied_at is None
        write(root, {"slow.py": "def slow():\n    pass\n", "b.py": "y = 2\n"})
        wait_until(lambda: w.pending >= 2, timeout=DEADLINE)
        wait_until(lambda: w.pending == 0 and bool(repo.definition("slow")), timeout=DEADLINE)
        assert w.last_applied_at is not None and w.last_applied_at >= before
        assert w.last_error is None
    assert w.mode == "stopped"


def test_the_mode_says_how_the_watcher_watches(repo: Repository) -> None:
    w = RepositoryWatcher(repo, force_polling=True, poll_interval=0.05)
    modes = [w.mode]
    with w:
        modes.append(w.mode)
    modes.append(w.mode)
    assert modes == ["stopped", "polling", "stopped"]


def test_the_index_survives_the_root_being_deleted_and_recreated(
    root: Path, repo: Repository
) -> None:
    with RepositoryWatcher(repo, debounce=0.05):
        shutil.rmtree(root)
        write(root, {"reborn.py": "def reborn():\n    pass\n"})
        wait_until(lambda: repo.files() == ["reborn.py"], timeout=DEADLINE)
        assert repo.grep("reborn")[0].path == "reborn.py"
        write(root, {"later.py": "LATER = 1\n"})
        wait_until(lambda: "later.py" in repo.files(), timeout=DEADLINE)


def test_wait_for_version_returns_false_on_timeout(repo: Repository) -> None:
    assert repo.wait_for_version(repo.version, timeout=0.01)
    assert not repo.wait_for_version(repo.version + 1, timeout=0.01)
