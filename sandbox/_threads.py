"""Stopping the threads a cell leaves behind, so that none outlives the cell that started it.

A thread still running after its cell returns can spin on a core until RLIMIT_CPU ends the
worker, many minutes later, and nothing would tell the model. Python cannot kill a thread, so
the worker escalates after every cell:

1. thread pools left open are shut down (cancelling work not yet started): their idle threads
   sit in a C-level wait that no exception reaches, and shutting the pool down is what makes
   them exit;
2. a short grace, for those and for threads that are about to finish on their own (an
   exception raised into an exiting pool thread could stop it before it wakes the next one);
3. ``SystemExit`` is raised in every remaining thread with ``PyThreadState_SetAsyncExc``. It
   arrives at the thread's next bytecode, so it stops pure-Python loops; it is raised again
   every ``RETRY`` seconds for code that catches it once. ``threading`` and ``_thread`` end a
   thread on ``SystemExit`` without printing anything;
4. another grace; the threads still alive then (blocked in C, or catching ``SystemExit``
   forever) are reported as stuck, and the host replaces the whole worker.

Threads are counted with ``_thread._count()``, which includes threads started through
``_thread`` directly, not only the ones ``threading`` knows about. A thread is only counted once
it runs, which ``threading.Thread.start`` waits for but ``_thread.start_new_thread`` does not,
so ``track_raw_threads`` wraps the latter to count the threads it started that have not run
yet. The functions are bound at import so that model code which replaces them cannot hide its
threads by accident.
"""

from __future__ import annotations

import _thread
import ctypes
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

POLL = 0.005
RETRY = 0.05

_count = _thread._count
_current_frames = sys._current_frames
_get_ident = threading.get_ident
_enumerate = threading.enumerate
_monotonic = time.monotonic
_sleep = time.sleep
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int
_start_new_thread = _thread.start_new_thread
_starting = [0]
_starting_lock = threading.Lock()


def track_raw_threads() -> None:
    """Make ``_thread.start_new_thread`` count the threads it started that have not run yet."""

    def start_new_thread(
        function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> int:
        def bootstrap(*a: Any, **kw: Any) -> Any:
            with _starting_lock:
                _starting[0] -= 1
            return function(*a, **kw)

        with _starting_lock:
            _starting[0] += 1
        try:
            return _start_new_thread(bootstrap, args, {} if kwargs is None else kwargs)
        except BaseException:
            with _starting_lock:
                _starting[0] -= 1
            raise

    _thread.start_new_thread = start_new_thread
    _thread.start_new = start_new_thread  # type: ignore[attr-defined]


def _alive() -> int:
    return _count() + _starting[0]


class Settled(NamedTuple):
    """What ``ThreadReaper.settle`` found: threads stopped, threads stuck, pools shut down."""

    stopped: int = 0
    stuck: int = 0
    pools: int = 0

    def note(self) -> str:
        """The line the model sees on the cell's stderr, or ``""`` when nothing was stopped."""
        if not self.stopped:
            return ""
        pools = (
            f" ({self.pools} thread pool(s) left open were shut down; later submits fail)"
            if self.pools
            else ""
        )
        return (
            f"[sandbox] {self.stopped} thread(s) started by this cell were still running when "
            f"it ended, so they were stopped{pools}. Background threads are not allowed: join "
            "every thread before the cell ends, e.g. `with ThreadPoolExecutor() as pool:`.\n"
        )


class ThreadReaper:
    """Knows the worker's own threads and stops every other thread that outlives a cell.

    Created once the worker's threads are running and the (trusted) prelude has run; the
    threads alive then are exempt.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.baseline = _alive()
        self.own = set(_current_frames())

    def settle(self) -> Settled:
        """Wait for, then stop, the threads beyond the worker's own (see the module docstring)."""
        if self._wait(0.0):
            return Settled()
        leftover = _alive() - self.baseline
        pools = _shut_down_pools()
        if self._wait(self.grace):
            return Settled(stopped=leftover, pools=pools) if pools else Settled()
        deadline = _monotonic() + self.grace
        while True:
            self._raise_in_others()
            if self._wait(min(RETRY, max(deadline - _monotonic(), 0.0))):
                break
            if _monotonic() >= deadline:
                break
        stuck = max(_alive() - self.baseline, 0)
        return Settled(stopped=max(leftover - stuck, 0), stuck=stuck, pools=pools)

    def _wait(self, timeout: float) -> bool:
        """Whether only the worker's own threads are left, polling for up to ``timeout``."""
        deadline = _monotonic() + timeout
        while _alive() > self.baseline:
            if _monotonic() >= deadline:
                return False
            _sleep(POLL)
        return True

    def _raise_in_others(self) -> None:
        exempt = self.own | {_get_ident()}
        for ident in set(_current_frames()) - exempt:
            _set_async_exc(ident, SystemExit)


def _shut_down_pools() -> int:
    """Shut down every ``ThreadPoolExecutor`` whose worker threads are alive; returns how many.

    The executor is found through the weak reference its worker threads are started with.
    """
    module = sys.modules.get("concurrent.futures.thread")
    target = getattr(module, "_worker", None)
    if target is None:
        return 0
    pools: list[Any] = []
    for thread in _enumerate():
        if getattr(thread, "_target", None) is not target:
            continue
        args = getattr(thread, "_args", ())
        ref = args[0] if isinstance(args, tuple) and args else None
        pool = ref() if isinstance(ref, weakref.ReferenceType) else None
        if pool is not None and all(pool is not p for p in pools):
            pools.append(pool)
    for pool in pools:
        try:
            pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass
    return len(pools)
