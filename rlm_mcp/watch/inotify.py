"""inotify's coverage of a tree: the per-user watch budget, and watchdog's inotify seam.

inotify needs one watch per directory from a per-user budget
(``/proc/sys/fs/inotify/max_user_watches``). watchdog raises when the root
cannot be watched but silently skips subdirectories the kernel refuses, then
and for directories created later, so an over-budget watcher would miss
changes while claiming to watch. :func:`count_dirs` and :func:`watches_in_use`
let the watcher count directories against the budget before it starts, and
:func:`native_observer` listens at watchdog's inotify seam for refused watches
and queue overflows.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

FD_SEAM = False
if sys.platform.startswith("linux"):
    try:  # watchdog >= 7: an inotify instance per observer, the seam we listen at
        from watchdog.observers.inotify import InotifyEmitter
        from watchdog.observers.inotify_c import (
            CallbackId,
            InotifyEvent,
            InotifyFD,
            Mask,
            WatchCallback,
            WatchDescriptor,
        )

        FD_SEAM = True
    except ImportError:  # watchdog 6 raises for every refused watch by itself
        pass

__all__ = [
    "FD_SEAM",
    "LIMIT_ERRNOS",
    "MAX_USER_WATCHES",
    "OnOverflow",
    "OnRefused",
    "count_dirs",
    "native_observer",
    "stop_observer",
    "watch_limit",
    "watches_in_use",
]

log = logging.getLogger(__name__)

MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"
LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE})
"""The errors of a watch refused for want of budget (watches, instances, open files)."""

OnRefused = Callable[[bytes, OSError], None]
"""Called with the path and the error of each watch the kernel refuses."""
OnOverflow = Callable[[], None]
"""Called when the kernel's event queue overflowed and events were lost."""


def watch_limit() -> int | None:
    """``max_user_watches``, or ``None`` where it cannot be read (not Linux)."""
    try:
        with open(MAX_USER_WATCHES, encoding="ascii") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


def watches_in_use() -> int:
    """Watches this user's processes hold, as far as /proc lets us see (a lower bound)."""
    total, uid = 0, os.getuid()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        base = f"/proc/{pid}"
        try:
            if os.stat(base).st_uid != uid:
                continue
            fds = os.listdir(f"{base}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{base}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"{base}/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
                    total += sum(1 for line in fh if line.startswith("inotify wd:"))
            except OSError:
                continue
    return total


def count_dirs(root: str) -> int:
    """Directories a recursive inotify watch of ``root`` needs (symlinks not followed)."""
    count, stack = 0, [root]
    while stack:
        d = stack.pop()
        count += 1
        try:
            with os.scandir(d) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return count


if FD_SEAM:

    class _ReportingInotifyFD(InotifyFD):
        """watchdog's inotify instance, reporting refused watches and queue overflows.

        watchdog re-raises a refused watch only for the root of a recursive
        watch; this is the one place that also sees the subdirectories.
        """

        def __init__(self, on_refused: OnRefused, on_overflow: OnOverflow) -> None:
            super().__init__()
            self._rlm_on_refused = on_refused
            self._rlm_on_overflow = on_overflow

        def add_callback(
            self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId
        ) -> WatchDescriptor:
            try:
                return super().add_callback(path, mask, callback, id_)
            except OSError as exc:
                if exc.errno in LIMIT_ERRNOS:
                    self._rlm_on_refused(path, exc)
                raise

        def handle_event(self, event: InotifyEvent) -> None:
            if event.is_queue_overflow:
                self._rlm_on_overflow()
            super().handle_event(event)

    class _InotifyObserver(BaseObserver):
        """An inotify observer over a :class:`_ReportingInotifyFD` of its own."""

        def __init__(self, on_refused: OnRefused, on_overflow: OnOverflow) -> None:
            fd = _ReportingInotifyFD(on_refused, on_overflow)
            fd.start()
            self._rlm_fd = fd
            super().__init__(InotifyEmitter, inotify_fd=fd)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._rlm_fd.stop()
            if self._rlm_fd.is_alive():
                self._rlm_fd.join()


def native_observer(on_refused: OnRefused, on_overflow: OnOverflow) -> BaseObserver:
    """The platform's native observer; over inotify, it calls ``on_refused`` for each watch
    the kernel refuses and ``on_overflow`` when its event queue overflows (on any thread)."""
    return _InotifyObserver(on_refused, on_overflow) if FD_SEAM else Observer()


def stop_observer(obs: Any, timeout: float = 5.0) -> None:
    """Stop and join ``obs``; a failure to stop is logged, never raised."""
    try:
        obs.stop()
        if obs.is_alive():
            obs.join(timeout)
    except Exception:
        log.debug("stopping the observer failed", exc_info=True)
