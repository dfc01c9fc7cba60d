"""The watcher under faults: inotify budget spent, inotify queue overflow, disk full.

The faults are injected at the edges: the ``inotify_add_watch`` system call
that watchdog calls, the kernel's own limits where this process may lower them,
and the ``apply_changes``/``refresh`` methods of one real Repository instance.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.watch import RepositoryWatcher
from tests.index.index_helpers import write
from tests.polling import wait_until

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux"),
    # watchdog warns when a new directory is both walked and reported; harmless, but the
    # warnings-as-errors setting would turn it into a dead inotify thread.
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]

DEADLINE = 10.0
MAX_USER_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")
MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    write(r, {f"d{i}/m{i}.py": f"def old_{i}():\n    pass\n" for i in range(6)})
    return r


@pytest.fixture
def repo(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    settings = IndexSettings(cache_dir=tmp_path_factory.mktemp("cache"), workers=2)
    r = load(root, settings)
    yield r
    r.close()


def indexed(repo: Repository, *names: str) -> Callable[[], bool]:
    return lambda: all(repo.definition(n) for n in names)


class WatchBudget:
    """``inotify_add_watch`` as the kernel behaves once a user's watch budget is spent.

    The first ``budget`` distinct paths get real watches; any other path fails
    with ENOSPC, exactly as the system call does at ``max_user_watches``.
    """

    def __init__(self, budget: int) -> None:
        from watchdog.observers import inotify_c

        self.budget = budget
        self.granted: set[bytes] = set()
        self.refused: list[bytes] = []
        self._real = inotify_c.inotify_add_watch

    def __call__(self, fd: int, path: bytes, mask: int) -> int:
        if path not in self.granted and len(self.granted) >= self.budget:
            self.refused.append(path)
            ctypes.set_errno(errno.ENOSPC)
            return -1
        wd = self._real(fd, path, mask)
        if wd >= 0:
            self.granted.add(path)
        return wd

    def install(self, monkeypatch: pytest.MonkeyPatch) -> WatchBudget:
        from watchdog.observers import inotify_c

        monkeypatch.setattr(inotify_c, "inotify_add_watch", self)
        return self


SYSCTL_LOCK = Path(tempfile.gettempdir()) / "rlm-mcp-tests-inotify-sysctl.lock"


@contextmanager
def sysctl_lock(*, exclusive: bool) -> Iterator[None]:
    """Keep concurrent test runs from lowering inotify limits under each other."""
    with open(SYSCTL_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def kernel_setting(path: Path, value: int) -> Iterator[None]:
    """Set a /proc/sys value for the duration of the block, restoring it after."""
    with sysctl_lock(exclusive=True):
        try:
            old = path.read_text()
            path.write_text(f"{value}\n")
        except OSError as exc:
            pytest.skip(f"cannot change {path}: {exc}")
        try:
            yield
        finally:
            path.write_text(old)


def watches_in_use() -> int:
    """Inotify watches held by this user's processes, as far as /proc shows them."""
    total, uid = 0, os.getuid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    total += info.count("inotify wd:")
        except OSError:
            continue
    return total


# -- inotify budget -------------------------------------------------------------------


def test_subdirectories_refused_a_watch_at_start_make_the_watcher_poll_and_miss_nothing(
    root: Path,
    repo: Repository,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = WatchBudget(3).install(monkeypatch)
    w = RepositoryWatcher(repo, debounce=0.05, poll_interval=0.05)
    with sysctl_lock(exclusive=False):
        w.start()
    with w:
        assert budget.refused, "the budget should have refused some subdirectories"
        for i in range(6):
            write(root, {f"d{i}/m{i}.py": f"def new_{i}():\n    pass\n"})
            write(root, {f"d{i}/extra{i}.py": f"def extra_{i}():\n    pass\n"})
        wait_until(
            indexed(repo, *[f"new_{i}" for i in range(6)], *[f"extra_{i}" for i in range(6)]),
            timeout=DEADLINE,
        )
        assert not any(repo.definition(f"old_{i}") for i in range(6))
        inside = w.mode
    assert (inside, w.mode) == ("polling", "stopped")
    assert "polling" in caplog.text and "inotify" in caplog.text


def test_directories_created_after_the_watch_budget_is_spent_are_still_indexed(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = WatchBudget(7).install(monkeypatch)  # the root and d0..d5, nothing more
    w = RepositoryWatcher(repo, debounce=0.05, poll_interval=0.05)
    with sysctl_lock(exclusive=False):
        w.start()
    with w:
        assert not budget.refused
        write(root, {f"n{i}/deep/f{i}.py": f"def later_{i}():\n    pass\n" for i in range(5)})
        wait_until(indexed(repo, *[f"later_{i}" for i in range(5)]), timeout=DEADLINE)
        write(root, {"n0/deep/after.py": "def after():\n    pass\n"})
        write(root, {"n4/deep/f4.py": "def rewritten():\n    pass\n"})
        wait_until(indexed(repo, "after", "rewritten"), timeout=DEADLINE)
        assert budget.refused
        assert w.mode == "polling"


def test_the_root_refused_a_watch_still_falls_back_to_polling(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    WatchBudget(0).install(monkeypatch)
    with RepositoryWatcher(repo, debounce=0.05, poll_interval=0.05) as w:
        assert w.mode == "polling"
        write(root, {"polled.py": "def polled():\n    pass\n"})
        wait_until(indexed(repo, "polled"), timeout=DEADLINE)


def test_a_kernel_watch_limit_below_the_directory_count_is_detected_and_polled_around(
    root: Path, repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    write(root, {f"many/s{i}/x{i}.py": f"X{i} = {i}\n" for i in range(30)})
    repo.refresh()
    w = RepositoryWatcher(repo, debounce=0.05, poll_interval=0.05)
    # Other processes of this user share the budget: keep the window short.
    with kernel_setting(MAX_USER_WATCHES, watches_in_use() + 5):
        w.start()
    try:
        write(root, {f"many/s{i}/x{i}.py": f"def changed_{i}():\n    pass\n" for i in range(30)})
        wait_until(indexed(repo, *[f"changed_{i}" for i in range(30)]), timeout=DEADLINE)
        assert w.mode == "polling"
        assert "polling" in caplog.text
    finally:
        w.stop()


def test_an_overflowing_inotify_queue_leads_to_a_rescan_that_misses_nothing(
    root: Path, repo: Repository, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    # Hold watchdog's reader before its first read, as a reader starved of CPU
    # would be, so the kernel's queue (16 events) overflows for certain: 300
    # files in watched directories are 900 events. Without the hold the reader
    # sometimes kept up and nothing overflowed. watchdog 7 reads raw buffers in
    # its thread (``read_events`` is no longer on that path), so the hold sits on
    # the one method every read goes through; the test fails loudly if a later
    # watchdog reads some other way.
    reader_may_read = threading.Event()
    held = threading.Event()
    real_read = InotifyFD._read_event_buffer

    def held_read(fd: InotifyFD, *args: object, **kwargs: object) -> bytes:
        held.set()
        reader_may_read.wait(DEADLINE)
        return real_read(fd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(InotifyFD, "_read_event_buffer", held_read)
    w = RepositoryWatcher(repo, debounce=0.1)
    # The queue length is fixed when the inotify instance is created.
    with kernel_setting(MAX_QUEUED_EVENTS, 16):
        w.start()
    try:
        assert held.wait(DEADLINE), "watchdog's reader never reached the held read"
        write(root, {f"d{i % 6}/storm{i}.py": f"def storm_{i}():\n    pass\n" for i in range(300)})
        reader_may_read.set()
        wait_until(lambda: len(repo.files("d*/storm*.py")) == 300, timeout=DEADLINE)
        wait_until(indexed(repo, *[f"storm_{i}" for i in range(300)]), timeout=DEADLINE)
        assert "overflowed" in caplog.text
        assert w.mode == "inotify", "an overflow costs a rescan, not inotify"
    finally:
        reader_may_read.set()
        w.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_inotify_thread_is_restarted_and_what_it_missed_is_rescanned(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers.inotify import InotifyWatchGroup

    real = InotifyWatchGroup.on_event
    crashed = threading.Event()

    def crash_once(group: InotifyWatchGroup, event: object) -> None:
        if not crashed.is_set() and b"boom" in getattr(event, "name", b""):
            crashed.set()
            raise RuntimeError("injected: the inotify thread dies")
        real(group, event)  # type: ignore[arg-type]

    monkeypatch.setattr(InotifyWatchGroup, "on_event", crash_once)
    w = RepositoryWatcher(repo, debounce=0.05)
    with sysctl_lock(exclusive=False):
        w.start()
    with w:
        write(root, {"boom.py": "def boom():\n    pass\n"})
        write(root, {"d0/m0.py": "def lost_with_the_thread():\n    pass\n"})
        wait_until(indexed(repo, "boom", "lost_with_the_thread"), timeout=DEADLINE)
        assert crashed.is_set()
        write(root, {"d1/m1.py": "def after_restart():\n    pass\n"})
        wait_until(indexed(repo, "after_restart"), timeout=DEADLINE)
        assert w.mode == "inotify"
        wait_until(lambda: w.last_error is None, timeout=DEADLINE)


# -- failed applies ---------------------------------------------------------------------


class DiskFull:
    """Wraps one Repository method so it raises ENOSPC until space is freed."""

    def __init__(self, real: Callable[..., object], *, fail_first: int | None = None) -> None:
        self.real = real
        self.fail_first = fail_first
        self.freed = threading.Event()
        self.failed_at: list[float] = []
        self.successes = 0

    @property
    def failures(self) -> int:
        return len(self.failed_at)

    def __call__(self, *args: object) -> object:
        if self.fail_first is None:
            full = not self.freed.is_set()
        else:
            full = self.failures < self.fail_first
        if full:
            self.failed_at.append(time.monotonic())
            raise OSError(errno.ENOSPC, "No space left on device")
        result = self.real(*args)
        self.successes += 1
        return result


def test_a_batch_that_fails_on_a_full_disk_is_retried_with_backoff_until_it_lands(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = DiskFull(repo.apply_changes)
    monkeypatch.setattr(repo, "apply_changes", disk)
    with RepositoryWatcher(repo, debounce=0.05) as w:
        write(root, {"first.py": "def first():\n    pass\n"})
        wait_until(
            lambda: w.last_error is not None and "No space left" in w.last_error, timeout=DEADLINE
        )
        assert w.pending >= 1
        write(root, {"second.py": "def second():\n    pass\n"})
        wait_until(lambda: w.pending >= 2, timeout=DEADLINE)
        wait_until(lambda: disk.failures >= 3, timeout=DEADLINE)
        t = disk.failed_at
        assert t[2] - t[1] > 1.5 * (t[1] - t[0]) > 0, "retries back off"
        disk.freed.set()
        wait_until(indexed(repo, "first", "second"), timeout=DEADLINE)
        wait_until(lambda: w.pending == 0 and w.last_error is None, timeout=DEADLINE)
        assert w.last_applied_at is not None
        assert disk.successes == 1, "the retried batch and the newer changes land together"
        write(root, {"third.py": "def third():\n    pass\n"})
        wait_until(indexed(repo, "third"), timeout=DEADLINE)


def test_a_batch_that_fails_a_few_times_lands_without_any_further_change(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = DiskFull(repo.apply_changes, fail_first=2)
    monkeypatch.setattr(repo, "apply_changes", disk)
    with RepositoryWatcher(repo, debounce=0.05) as w:
        write(root, {"d0/m0.py": "def rewritten():\n    pass\n"})
        (root / "d1" / "m1.py").unlink()
        wait_until(indexed(repo, "rewritten"), timeout=DEADLINE)
        wait_until(lambda: "d1/m1.py" not in repo.files(), timeout=DEADLINE)
        assert disk.failures == 2
        # The index changes inside apply_changes; the watcher clears its error just after.
        wait_until(lambda: w.last_error is None, timeout=DEADLINE)


def test_a_rescan_that_fails_after_the_root_comes_back_is_retried(
    root: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    disk = DiskFull(repo.refresh, fail_first=2)
    monkeypatch.setattr(repo, "refresh", disk)
    with RepositoryWatcher(repo, debounce=0.05):
        shutil.rmtree(root)
        write(root, {"reborn.py": "def reborn():\n    pass\n"})
        wait_until(lambda: repo.files() == ["reborn.py"], timeout=DEADLINE)
        assert disk.failures == 2
