"""The watcher: file events debounced into batches for :meth:`Repository.apply_changes`.

A watchdog observer feeds file events into a pending set; one applier thread
hands the whole set to :meth:`Repository.apply_changes` once it is due:

* when events have been quiet for ``debounce`` seconds;
* under a steady stream that adds no new paths (one file rewritten over and
  over), once the batch is ``max_delay`` seconds old;
* under a burst that keeps adding new paths (a branch switch), when the burst
  ends, or at the latest :data:`MAX_BURST` seconds in. Slicing a burst every
  ``max_delay`` would publish half-switched trees and pay the per-apply cost
  again and again; ``pending`` says an update is coming instead.

A batch's age counts from the end of the previous apply, so what arrives
during a long apply is not applied the moment it finishes, mid-burst.

A batch that fails (disk full, store locked) goes back into the pending set,
merged with whatever arrived since, and is retried with exponential backoff
capped at ``retry_max``: nothing is dropped. ``pending``, ``last_error`` and
``last_applied_at`` tell a client how fresh the index is.

inotify needs one watch per directory from a per-user budget, and watchdog
skips the subdirectories the kernel refuses without a word
(:mod:`~rlm_mcp.watch.inotify`). The watcher therefore counts directories
against the budget before it starts, and listens at watchdog's inotify seam
for refused watches and queue overflows. Out of budget it polls the whole tree
(``mode == "polling"``) with a warning; when the kernel drops events (a
refused watch while running, a queue overflow) it also rescans.

The applier also watches the root itself: when it disappears the index keeps
its last state, and when it comes back (same path, new inode) the observer is
restarted and the repository fully rescanned.

In a git work tree it also watches git's own marks (:mod:`~rlm_mcp.watch.git`):
while an operation holds ``index.lock`` no batch is applied (a half-switched tree
is never published), and once ``HEAD``, its commit or the stash has moved, the
whole operation (a branch switch, rebase, reset, revert, ``git stash``) is one
rescan, with every file event it caused folded in. ``pending`` counts a move of
the marks the moment git has made it, before any file event is read, so no
status claims freshness that has not been checked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from rlm_mcp.index.repository import Repository
from rlm_mcp.watch.git import GitTracker
from rlm_mcp.watch.inotify import (
    LIMIT_ERRNOS,
    count_dirs,
    native_observer,
    stop_observer,
    watch_limit,
    watches_in_use,
)

__all__ = ["Mode", "RepositoryWatcher"]

log = logging.getLogger(__name__)

Mode = Literal["inotify", "polling", "stopped"]

MAX_DELAY = 2.0
MAX_BURST = 10.0
RETRY_INITIAL = 0.25
RETRY_MAX = 30.0
ROOT_CHECK_INTERVAL = 0.1
POLL_COST_FACTOR = 10.0
"""A fallback poll waits this many times one directory walk, so polling a huge tree idles."""
POLL_MAX_INTERVAL = 30.0
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileMovedEvent,
    DirMovedEvent,
]
"""The events worth a kernel queue slot: no opens or read-only closes, which the
indexer's own reads would otherwise produce by the thousand."""


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: RepositoryWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        w = self._watcher
        src = w._rel(event.src_path)
        if src == "" and isinstance(event, DirDeletedEvent | DirMovedEvent):
            w._root_lost.set()
            w._wake.set()
            return
        # A deleted file is re-examined like a changed one (it stats as gone);
        # only a deleted directory needs its whole subtree dropped.
        if isinstance(event, DirMovedEvent):
            w._note(w._rel(event.dest_path), removed=src)
        elif isinstance(event, FileMovedEvent):
            w._note(src, w._rel(event.dest_path))
        elif isinstance(event, DirDeletedEvent):
            w._note(removed=src)
        else:
            w._note(src)


@dataclass(frozen=True, slots=True)
class _Batch:
    touched: frozenset[str]
    removed: frozenset[str]
    rescan: bool

    @property
    def size(self) -> int:
        return len(self.touched | self.removed) + self.rescan


class RepositoryWatcher:
    """Apply file-system changes under ``repo.root`` to ``repo``, debounced.

    Args:
        repo: The repository to keep fresh.
        debounce: Quiet seconds before a batch is applied (default: the repo's settings).
        force_polling: Poll instead of using inotify.
        poll_interval: Seconds between polls (a fallback on a big tree waits longer).
        max_delay: Age at which a steady stream of the same paths is applied anyway.
        retry_initial: First wait after a failed apply; it doubles per failure...
        retry_max: ...up to this.
    """

    def __init__(
        self,
        repo: Repository,
        debounce: float | None = None,
        *,
        force_polling: bool = False,
        poll_interval: float = 0.2,
        max_delay: float = MAX_DELAY,
        retry_initial: float = RETRY_INITIAL,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.repo = repo
        self.debounce = repo.settings.debounce_seconds if debounce is None else debounce
        self.force_polling = force_polling
        self.poll_interval = poll_interval
        self.max_delay = max_delay
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._root = str(repo.root)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._touched: set[str] = set()
        self._removed: set[str] = set()
        self._rescan = False
        self._first_event = self._last_event = self._last_growth = 0.0
        self._applied_mono = 0.0
        self._in_flight = 0
        self._failures = 0
        self._retry_at = 0.0
        self._last_applied_at: float | None = None
        self._last_error: str | None = None
        self._mode: Mode = "stopped"
        self._refused = 0
        self._refused_example = ""
        self._coverage_lost = threading.Event()
        self._walk_seconds = 0.0
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._root_id: tuple[int, int] | None = None
        self._root_lost = threading.Event()
        self._git = GitTracker.at(repo.root)

    # -- status ----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """``"inotify"`` (the platform's native notifications), ``"polling"`` or ``"stopped"``.

        Polling is either forced or the fallback when inotify cannot cover the tree.
        """
        t = self._thread
        return self._mode if t is not None and t.is_alive() else "stopped"

    @property
    def pending(self) -> int:
        """Paths noted but not yet in the index (a pending rescan counts one, and so does a
        git operation running or done but not yet taken up)."""
        git = self._git_pending()  # before the counts: the applier requests, then records
        with self._lock:
            waiting = len(self._touched) + len(self._removed - self._touched) + self._rescan
            return waiting + self._in_flight + git

    @property
    def git_changes(self) -> int:
        """Git operations (a move of ``HEAD``, its commit or the stash) taken up so far."""
        return self._git.changes if self._git is not None else 0

    def _git_pending(self) -> int:
        running = self._thread is not None
        return self._git.pending() if self._git is not None and running else 0

    @property
    def last_applied_at(self) -> float | None:
        """Wall-clock time of the last successful update; ``None`` before the first."""
        return self._last_applied_at

    @property
    def last_error(self) -> str | None:
        """Why the latest update failed while it is being retried; ``None`` once one succeeds."""
        return self._last_error

    # -- events ----------------------------------------------------------------

    def _rel(self, path: str | bytes) -> str | None:
        p = os.fsdecode(path)
        if p == self._root:
            return ""
        if not p.startswith(self._root + os.sep):
            return None
        rel = p[len(self._root) + 1 :].replace(os.sep, "/")
        if rel == ".git" or (rel.startswith(".git/") and rel != ".git/info/exclude"):
            return None
        return rel

    def _note(self, *touched: str | None, removed: str | None = None) -> None:
        if "" in touched or removed == "":
            self._request_rescan()
        paths = [p for p in touched if p]
        if not paths and not removed:
            return
        now = time.monotonic()
        with self._lock:
            if not self._has_pending():
                self._first_event = now
            self._last_event = now
            before = len(self._touched) + len(self._removed)
            self._touched.update(paths)
            if removed:
                self._removed.add(removed)
            if len(self._touched) + len(self._removed) > before:
                self._last_growth = now
        self._wake.set()

    def _request_rescan(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._has_pending():
                self._first_event = now
            self._last_event = self._last_growth = now
            self._rescan = True
        self._wake.set()

    def _has_pending(self) -> bool:
        return bool(self._touched or self._removed or self._rescan)

    def _watch_refused(self, path: bytes, exc: OSError) -> None:
        """Called by the inotify instance, on its thread or ours, for each refused watch."""
        with self._lock:
            self._refused += 1
            if not self._refused_example:
                self._refused_example = f"{os.fsdecode(path)}: {exc}"
        self._coverage_lost.set()
        self._wake.set()

    def _queue_overflowed(self) -> None:
        log.warning("the inotify queue for %s overflowed and lost events; rescanning", self._root)
        self._request_rescan()

    # -- lifecycle -------------------------------------------------------------

    def _root_stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._root)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _start_observer(self) -> None:
        if self.force_polling:
            log.info("watching %s by polling every %.2fs", self._root, self.poll_interval)
            self._start_polling(self.poll_interval)
            return
        reason = self._over_budget() or self._start_inotify()
        if reason is None:
            return
        interval = self._fallback_interval()
        log.warning(
            "not watching %s with inotify (%s); polling the whole tree every %.2fs instead",
            self._root,
            reason,
            interval,
        )
        self._start_polling(interval)

    def _over_budget(self) -> str | None:
        """Why inotify cannot cover the tree, judged before adding any watch."""
        limit = watch_limit()
        if limit is None:
            return None
        t0 = time.perf_counter()
        dirs = count_dirs(self._root)
        self._walk_seconds = time.perf_counter() - t0
        free = limit - watches_in_use()
        if dirs <= free:
            return None
        return (
            f"{dirs} directories need a watch each but only {max(free, 0)} of "
            f"max_user_watches={limit} are free"
        )

    def _start_inotify(self) -> str | None:
        """Start an inotify observer; why not, when the kernel refused any watch."""
        self._coverage_lost.clear()
        with self._lock:
            self._refused, self._refused_example = 0, ""
        obs: BaseObserver | None = None
        try:
            obs = native_observer(self._watch_refused, self._queue_overflowed)
            obs.schedule(_Handler(self), self._root, recursive=True, event_filter=_EVENTS)
            obs.start()
        except BaseException as exc:
            if obs is not None:
                stop_observer(obs)
            if not isinstance(exc, OSError) or (
                exc.errno not in LIMIT_ERRNOS and "inotify" not in str(exc)
            ):
                raise
            return f"inotify refused the root: {exc}"
        if self._coverage_lost.is_set():
            stop_observer(obs)
            return self._refusals()
        self._observer, self._mode = obs, "inotify"
        return None

    def _refusals(self) -> str:
        with self._lock:
            return f"inotify refused {self._refused} watch(es), e.g. {self._refused_example}"

    def _fallback_interval(self) -> float:
        walk = POLL_COST_FACTOR * self._walk_seconds
        return max(self.poll_interval, min(POLL_MAX_INTERVAL, walk))

    def _start_polling(self, interval: float) -> None:
        obs = PollingObserver(timeout=interval)
        obs.schedule(_Handler(self), self._root, recursive=True, event_filter=_EVENTS)
        obs.start()
        self._observer, self._mode = obs, "polling"

    def _fall_back_to_polling(self) -> None:
        """inotify stopped covering the tree while running: poll, and rescan what was missed."""
        reason = self._refusals()
        interval = self._fallback_interval()
        log.warning(
            "inotify stopped covering %s (%s); polling the whole tree every %.2fs and rescanning",
            self._root,
            reason,
            interval,
        )
        obs, self._observer = self._observer, None
        if obs is not None:
            stop_observer(obs)
        self._start_polling(interval)
        self._request_rescan()

    def _observer_alive(self) -> bool:
        obs = self._observer
        if obs is None:
            return False
        threads: list[threading.Thread] = [obs, *list(obs.emitters)]
        fd = getattr(obs, "_rlm_fd", None)
        if isinstance(fd, threading.Thread):
            threads.append(fd)
        return all(t.is_alive() for t in threads)

    def _restart_observer(self) -> None:
        """A watchdog thread died (events would stop silently): restart it and rescan."""
        log.warning("the %s observer for %s stopped; restarting it", self._mode, self._root)
        self._last_error = f"the {self._mode} observer stopped; restarted it and rescanning"
        obs, self._observer = self._observer, None
        if obs is not None:
            stop_observer(obs)
        self._start_observer()
        self._request_rescan()

    def start(self) -> RepositoryWatcher:
        if self._thread is not None:
            return self
        self._stopping.clear()
        self._root_id = self._root_stat()
        if self._git is not None:
            self._git.start()
        self._start_observer()
        self._thread = threading.Thread(
            target=self._run, name=f"rlm-watch:{self.repo.root.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        obs, self._observer = self._observer, None
        if obs is not None:
            stop_observer(obs, timeout)
        self._mode = "stopped"

    def __enter__(self) -> RepositoryWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the applier thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(ROOT_CHECK_INTERVAL)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._step()
            except Exception as exc:
                log.exception("the watcher for %s hit an error; carrying on", self._root)
                self._last_error = f"watcher: {exc!r}"
                self._stopping.wait(1.0)

    def _step(self) -> None:
        if self._check_root():
            return
        if self._coverage_lost.is_set() and self._mode == "inotify":
            self._fall_back_to_polling()
        elif not self._observer_alive():
            self._restart_observer()
        if self._git_holds():
            self._stopping.wait(ROOT_CHECK_INTERVAL)
            self._wake.set()
            return
        batch = self._take_due_batch()
        if isinstance(batch, float):
            # New events only push the due time later; the root and coverage still get checked.
            self._stopping.wait(min(batch, ROOT_CHECK_INTERVAL))
            self._wake.set()
        elif batch is not None:
            self._apply(batch)

    def _git_holds(self) -> bool:
        """Take a git operation up as one change set; ``True`` while one is still running."""
        step = self._git.step() if self._git is not None else None
        if step == "moved":
            log.info("git moved in %s: rescanning as one change set", self._root)
            self._request_rescan()  # first, so `pending` never reads zero in between
            assert self._git is not None
            self._git.taken()
        return step == "hold"

    def _take_due_batch(self) -> _Batch | float | None:
        """The batch to apply now, the seconds until one is due, or ``None``."""
        with self._lock:
            if not self._has_pending():
                return None
            now = time.monotonic()
            start = max(self._first_event, self._applied_mono)
            quiet = self._last_event + self.debounce
            steady = max(start + self.max_delay, self._last_growth + self.debounce)
            due = max(min(quiet, steady, start + MAX_BURST), self._retry_at)
            if due > now:
                return due - now
            batch = _Batch(frozenset(self._touched), frozenset(self._removed), self._rescan)
            self._touched, self._removed, self._rescan = set(), set(), False
            self._in_flight = batch.size
            return batch

    def _apply(self, batch: _Batch) -> None:
        error: Exception | None = None
        try:
            if batch.rescan:
                self.repo.refresh()
                if self.repo.partial_note() is not None:
                    self.repo.start_completion()  # a big rescan stored texts first
            else:
                self.repo.apply_changes(set(batch.touched), set(batch.removed))
        except Exception as exc:
            error = exc
        now = time.monotonic()
        with self._lock:
            self._in_flight = 0
            self._applied_mono = now
            if error is None:
                self._failures, self._retry_at, self._last_error = 0, 0.0, None
                self._last_applied_at = time.time()
                return
            if not self._has_pending():
                self._first_event = self._last_event = now
            self._touched |= batch.touched
            self._removed |= batch.removed
            self._rescan |= batch.rescan
            self._failures += 1
            failures = self._failures
            delay = min(self.retry_max, self.retry_initial * 2 ** min(failures - 1, 30))
            self._retry_at = now + delay
            what = "rescan" if batch.rescan else f"applying {batch.size} change(s)"
            self._last_error = f"{what} failed: {error}"
        message = "%s; retry %d in %.2fs, keeping the changes pending"
        if failures == 1:
            log.error(message, self._last_error, failures, delay, exc_info=error)
        else:
            log.warning(message, self._last_error, failures, delay)

    def _check_root(self) -> bool:
        """Handle the root vanishing or being replaced; ``True`` when it did."""
        current = self._root_stat()
        if current is not None and self._root_lost.is_set():
            self._root_lost.clear()
            self._root_id = None
        if current == self._root_id:
            return False
        if current is None:
            if self._root_id is not None:
                log.warning("repository root %s disappeared; keeping the last index", self._root)
                self._root_id = None
            return True
        log.info("repository root %s (re)appeared; rescanning", self._root)
        obs, self._observer = self._observer, None
        if obs is not None:
            stop_observer(obs)
        with self._lock:
            self._touched.clear()
            self._removed.clear()
        self._start_observer()
        self._root_id = current
        self._request_rescan()
        return True
