"""Keep a loaded repository fresh while files change on disk.

A watchdog observer feeds file events into a pending set; one applier thread
waits until the events have been quiet for ``debounce`` seconds (or until
:data:`MAX_DELAY` has passed under a steady stream), then hands the whole set
to :meth:`Repository.apply_changes`. A branch switch touching thousands of
files therefore becomes one or two index updates, not thousands.

The applier also watches the root itself: when it disappears the index keeps
its last state, and when it comes back (same path, new inode) the observer is
restarted and the repository fully rescanned. Where inotify runs out of
watches, the watcher falls back to polling and logs that it did.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Any

from watchdog.events import (
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedNoWriteEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from rlm_mcp.index.repository import Repository

__all__ = ["RepositoryWatcher"]

log = logging.getLogger(__name__)

MAX_DELAY = 2.0
ROOT_CHECK_INTERVAL = 0.1
_INOTIFY_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE})


class _Handler(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, watcher: RepositoryWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent | FileClosedNoWriteEvent | DirModifiedEvent):
            return
        w = self._watcher
        src = w._rel(event.src_path)
        if src == "" and isinstance(event, DirDeletedEvent | DirMovedEvent):
            w._root_lost.set()
            w._wake.set()
            return
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            w._note(changed=w._rel(event.dest_path), deleted=src)
        elif isinstance(event, FileDeletedEvent | DirDeletedEvent):
            w._note(deleted=src)
        else:
            w._note(changed=src)


class RepositoryWatcher:
    """Apply file-system changes under ``repo.root`` to ``repo``, debounced.

    ``force_polling`` skips inotify (and is what the fallback uses);
    ``using_polling`` tells which one is running.
    """

    def __init__(
        self,
        repo: Repository,
        debounce: float | None = None,
        *,
        force_polling: bool = False,
        poll_interval: float = 0.2,
    ) -> None:
        self.repo = repo
        self.debounce = repo.settings.debounce_seconds if debounce is None else debounce
        self.force_polling = force_polling
        self.poll_interval = poll_interval
        self.using_polling = False
        self._root = str(repo.root)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        self._first_event = 0.0
        self._last_event = 0.0
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._root_id: tuple[int, int] | None = None
        self._root_lost = threading.Event()

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

    def _note(self, changed: str | None = None, deleted: str | None = None) -> None:
        if not changed and not deleted:
            return
        now = time.monotonic()
        with self._lock:
            if not self._changed and not self._deleted:
                self._first_event = now
            self._last_event = now
            if changed:
                self._changed.add(changed)
                self._deleted.discard(changed)
            if deleted:
                self._deleted.add(deleted)
                self._changed.discard(deleted)
        self._wake.set()

    # -- lifecycle -------------------------------------------------------------

    def _root_stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._root)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _start_observer(self) -> None:
        if not self.force_polling:
            obs: Any = Observer()
            try:
                obs.schedule(_Handler(self), self._root, recursive=True)
                obs.start()
                self._observer = obs
                self.using_polling = False
                return
            except OSError as exc:
                if exc.errno not in _INOTIFY_LIMIT_ERRNOS and "inotify" not in str(exc):
                    raise
                log.warning(
                    "inotify limit reached watching %s (%s); falling back to polling",
                    self._root,
                    exc,
                )
                _stop_observer(obs)
        else:
            log.info("watching %s by polling every %.2fs", self._root, self.poll_interval)
        obs = PollingObserver(timeout=self.poll_interval)
        obs.schedule(_Handler(self), self._root, recursive=True)
        obs.start()
        self._observer = obs
        self.using_polling = True

    def start(self) -> RepositoryWatcher:
        if self._thread is not None:
            return self
        self._root_id = self._root_stat()
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
            _stop_observer(obs, timeout)

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
            if self._check_root():
                continue
            with self._lock:
                if not self._changed and not self._deleted:
                    continue
                now = time.monotonic()
                quiet_left = self._last_event + self.debounce - now
                cap_left = self._first_event + MAX_DELAY - now
                if quiet_left > 0 and cap_left > 0:
                    wait_for = min(quiet_left, cap_left)
                    changed = deleted = None
                else:
                    wait_for = 0.0
                    changed, deleted = self._changed, self._deleted
                    self._changed, self._deleted = set(), set()
            if changed is None or deleted is None:
                self._stopping.wait(wait_for)
                self._wake.set()
                continue
            self._apply(changed, deleted)

    def _apply(self, changed: set[str], deleted: set[str]) -> None:
        try:
            if "" in deleted or "" in changed:
                self.repo.refresh()
            else:
                self.repo.apply_changes(changed, deleted)
        except Exception:
            log.exception("applying %d file changes to %s failed", len(changed), self._root)

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
        self._root_id = current
        obs, self._observer = self._observer, None
        if obs is not None:
            _stop_observer(obs)
        with self._lock:
            self._changed.clear()
            self._deleted.clear()
        try:
            self._start_observer()
            self.repo.refresh()
        except Exception:
            log.exception("rescanning %s failed", self._root)
        return True


def _stop_observer(obs: Any, timeout: float = 5.0) -> None:
    try:
        obs.stop()
        if obs.is_alive():
            obs.join(timeout)
    except Exception:
        log.debug("stopping the observer failed", exc_info=True)
