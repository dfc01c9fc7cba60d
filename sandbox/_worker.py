"""Sandbox worker: a persistent Python namespace behind operating-system lockdown.

The host (``sandbox.session``) starts this file as a script, ``python -I -B _worker.py IN OUT``,
with two pipe fds. ``-I`` keeps this directory off ``sys.path`` and the ``sandbox`` package
must not be imported here (its ``__init__`` pulls in the host side), so the sibling modules are
loaded from this directory as a private package. Everything the worker needs is imported
*before* the lockdown, because afterwards only a read-only set of paths is reachable and no new
privileges can be gained.

No thread that model code starts may outlive its cell: after each cell (and each ``get``) the
worker waits briefly for such threads, then stops them (``_threads``); the cell's stderr says so,
and threads that cannot be stopped are reported in the reply so that the host replaces the
worker. Until then, output they write after their cell ended is discarded.
"""

from __future__ import annotations

import ast
import builtins
import collections
import dataclasses
import difflib
import faulthandler
import functools
import importlib
import itertools
import json
import linecache
import math
import mmap
import os
import queue
import re
import signal
import statistics
import string
import sys
import textwrap
import threading
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

# Imported before lockdown so that the modules models use most are already in memory.
PRELOADED = (collections, dataclasses, difflib, functools, itertools, math, re, statistics)
PRELOADED_MORE = (string, textwrap, typing)

WORKER_FILE = os.path.abspath(__file__)
PACKAGE_DIR = os.path.dirname(WORKER_FILE)
PRIVATE_PACKAGE = "_sandbox_worker"


def _sibling(name: str) -> types.ModuleType:
    """A module from this directory, without importing the ``sandbox`` package.

    Imported as ``sandbox._worker`` (by tests) the normal package is used. Run as a script, a
    bare package object whose path is this directory stands in for it, so the siblings'
    relative imports resolve and no ``__init__`` runs.
    """
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    if PRIVATE_PACKAGE not in sys.modules:
        package = types.ModuleType(PRIVATE_PACKAGE)
        package.__path__ = [PACKAGE_DIR]
        sys.modules[PRIVATE_PACKAGE] = package
    return importlib.import_module(f"{PRIVATE_PACKAGE}.{name}")


if TYPE_CHECKING:
    from sandbox import _frames, _hostcalls, _lockdown, _output, _threads
else:
    _frames = _sibling("_frames")
    _hostcalls = _sibling("_hostcalls")
    _lockdown = _sibling("_lockdown")
    _output = _sibling("_output")
    _threads = _sibling("_threads")

_dumps = json.dumps
_exit = os._exit


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


class Worker:
    """The worker's state: namespace, pending host calls, per-cell capture and timers.

    The main thread runs cells; a reader thread receives host messages so that host-call
    results and interrupts arrive while a cell is running.
    """

    def __init__(self, init: dict[str, Any], fd_in: int, fd_out: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.limit = int(init["output_limit"])
        self.max_message = int(init["max_message_bytes"])
        self.lazy: dict[str, str] = dict(init["lazy"])
        self.lazy_cache: dict[str, tuple[tuple[int, int, int] | None, str]] = {}
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.write_lock = threading.Lock()
        self.default_timeout = float(init["exec_timeout"])
        self.host_calls = _hostcalls.HostCalls(
            self.send_frame,
            int(init["max_host_calls"]),
            self.max_message,
            max_concurrent=int(init["max_concurrent_host_calls"]),
            slot_timeout=self.default_timeout,
        )
        self.thread_grace = float(init["thread_grace"])
        self.reaper: _threads.ThreadReaper | None = None
        self.requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.capture: _output.Capture | None = None
        self.gen = 0
        self.active = False
        self.current_id: int | None = None
        self.timer_fired = False
        self.timeout = 0.0
        self.main_ident = threading.get_ident()
        self.cells = itertools.count(1)
        self.stdout = _output.Stream(self.capture_for_thread, "stdout")
        self.stderr = _output.Stream(self.capture_for_thread, "stderr")
        self.reserved: dict[str, Any] = {}

    # protocol
    def send(self, msg: dict[str, Any]) -> None:
        self.send_frame(_frames.encode(msg))

    def send_frame(self, frame: bytes) -> None:
        with self.write_lock:
            _frames.write_all(self.fd_out, frame)

    def reader(self) -> None:
        try:
            while True:
                msg = _frames.read_frame(self.fd_in, self.max_message)
                kind = msg.get("type")
                if kind in ("exec", "get"):
                    self.requests.put(msg)
                elif kind == "result":
                    self.host_calls.deliver(msg)
                elif kind == "interrupt" and self.active and msg.get("id") == self.current_id:
                    signal.pthread_kill(self.main_ident, signal.SIGUSR1)
        except BaseException:
            _exit(0)

    # output
    def capture_for_thread(self) -> _output.Capture | None:
        capture = self.capture
        if capture is None:
            return None
        if threading.get_ident() == self.main_ident:
            return capture
        if getattr(threading.current_thread(), "_sandbox_gen", None) == self.gen:
            return capture
        return None

    # signals
    def on_alarm(self, signum: int, frame: Any) -> None:
        if self.active:
            self.timer_fired = True
            raise TimeoutError(
                f"cell exceeded its {self.timeout:g} s time limit (stopped; variables are kept)"
            )

    def on_interrupt(self, signum: int, frame: Any) -> None:
        if self.active:
            raise KeyboardInterrupt("interrupted by the host")

    def install_signals(self) -> None:
        signal.signal(signal.SIGALRM, self.on_alarm)
        signal.signal(signal.SIGUSR1, self.on_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    # lazy data
    def bind_lazy(self, names: set[str]) -> None:
        for name in names & self.lazy.keys():
            if name in self.ns:
                continue
            path = self.lazy[name]
            try:
                st = os.stat(path)
                stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
            cached = self.lazy_cache.get(name)
            if cached is not None and cached[0] == stamp:
                text = cached[1]
            else:
                # A host that replaces the file (a follow-up's new context) gets the new text.
                text = self._load_text(path)
                self.lazy_cache[name] = (stamp, text)
            self.ns[name] = text

    @staticmethod
    def _load_text(path: str) -> str:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return ""
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return str(mapped, "utf-8", "replace")

    # execution
    def format_error(self, exc: BaseException) -> str:
        """Traceback text without frames from this package's files, cut to the output limit."""
        try:
            report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
            todo, seen = [report], set()
            while todo:
                item = todo.pop()
                if id(item) in seen:
                    continue
                seen.add(id(item))
                item.stack = traceback.StackSummary.from_list(
                    [f for f in item.stack if os.path.dirname(f.filename) != PACKAGE_DIR]
                )
                todo += [e for e in (item.__cause__, item.__context__) if e is not None]
            text = "".join(report.format())
        except Exception:
            text = f"{type(exc).__name__}: <unprintable>\n"
        if len(text) > self.limit:
            cut = len(text) - self.limit
            text = (
                text[: self.limit // 2]
                + f"\n[... traceback truncated: {cut} characters not shown ...]\n"
                + text[-self.limit // 2 :]
            )
        return text

    def safe_repr(self, value: Any) -> tuple[str, bool]:
        text = repr(value)
        if len(text) > self.limit:
            cut = len(text) - self.limit
            return text[: self.limit] + f"... [repr truncated: {cut} more characters]", True
        return text, False

    def run_timed(self, fn: Callable[[], Any], timeout: float) -> Any:
        self.timeout = timeout
        self.timer_fired = False
        self.active = True
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001), 0.5)
            return fn()
        finally:
            self.active = False
            signal.setitimer(signal.ITIMER_REAL, 0, 0)

    def run_exec(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.gen += 1
        capture = _output.Capture(self.limit)
        self.capture = capture
        self.current_id = msg["id"]
        error: str | None = None
        value: str | None = None
        truncated = False
        timed_out = False
        try:
            try:
                source = str(msg["code"])
                filename = f"<cell-{next(self.cells)}>"
                linecache.cache[filename] = (
                    len(source),
                    None,
                    source.splitlines(True),
                    filename,
                )
                tree = ast.parse(source, filename, "exec")
                last: ast.expr | None = None
                tail = tree.body[-1] if tree.body else None
                if isinstance(tail, ast.Expr):
                    tree.body.pop()
                    last = tail.value
                body = compile(tree, filename, "exec")
                expr = compile(ast.Expression(last), filename, "eval") if last is not None else None
                names = set(_code_names(body))
                if expr is not None:
                    names |= set(_code_names(expr))
                self.bind_lazy(names)
                ns = self.ns

                def run() -> tuple[str, bool] | None:
                    exec(body, ns)
                    if expr is not None:
                        result = eval(expr, ns)
                        if result is not None:
                            return self.safe_repr(result)
                    return None

                self.host_calls.slot_timeout = float(msg["timeout"])
                shown = self.run_timed(run, float(msg["timeout"]))
                if shown is not None:
                    value, truncated = shown
            except BaseException as exc:
                timed_out = self.timer_fired
                error = self.format_error(exc)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.capture = None
            self.restore()
        settled = self.settle_threads()
        truncated = truncated or any(capture.dropped.values())
        return {
            "type": "done",
            "id": msg["id"],
            "stdout": capture.text("stdout"),
            "stderr": capture.text("stderr") + settled.note(),
            "error": error,
            "value": value,
            "truncated": truncated,
            "timed_out": timed_out,
            "threads_stuck": settled.stuck,
        }

    def settle_threads(self) -> _threads.Settled:
        """Stop the threads the last request left running, then undo what they changed."""
        if self.reaper is None:
            return _threads.Settled()
        try:
            return self.reaper.settle()
        finally:
            self.restore()

    def restore(self) -> None:
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        self.install_signals()
        for name, val in self.reserved.items():
            self.ns[name] = val

    def run_get(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = str(msg["name"])
        max_bytes = int(msg["max_bytes"])
        self.bind_lazy({name})
        if name not in self.ns:
            return {"type": "value", "id": msg["id"], "found": False, "value": None}

        def render() -> Any:
            obj = self.ns[name]
            try:
                text = _dumps(obj)
            except (TypeError, ValueError):
                text = None
            if text is not None and len(text.encode()) <= max_bytes:
                return obj
            try:
                shown = repr(obj)
            except Exception as exc:
                shown = f"<unrepresentable {type(obj).__name__}: {exc}>"
            if len(shown) > max_bytes // 4:
                cut = len(shown) - max_bytes // 4
                shown = shown[: max_bytes // 4] + f"... [truncated: {cut} more characters]"
            return shown

        try:
            value = self.run_timed(render, self.default_timeout)
        except BaseException as exc:
            value = f"<error reading {name}: {type(exc).__name__}: {exc}>"
        finally:
            self.restore()
        stuck = self.settle_threads().stuck
        return {
            "type": "value",
            "id": msg["id"],
            "found": True,
            "value": value,
            "threads_stuck": stuck,
        }

    def run_prelude(self, prelude: str, reserved: list[str]) -> str | None:
        error = None
        if prelude:
            self.capture = _output.Capture(0)
            try:
                exec(compile(prelude, "<prelude>", "exec"), self.ns)
            except BaseException as exc:
                error = self.format_error(exc)
            finally:
                self.capture = None
        self.reserved = {name: self.ns[name] for name in reserved if name in self.ns}
        return error

    def serve(self) -> None:
        self.reaper = _threads.ThreadReaper(self.thread_grace)
        while True:
            msg = self.requests.get()
            reply = self.run_exec(msg) if msg["type"] == "exec" else self.run_get(msg)
            try:
                self.send(reply)
            except (TypeError, ValueError):
                self.send({**reply, "value": None, "error": "unserializable result"})


def _patch_thread_start(worker: Worker) -> None:
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        self._sandbox_gen = worker.gen  # type: ignore[attr-defined]
        original(self)

    threading.Thread.start = start  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[1]), int(argv[2])
    faulthandler.enable(all_threads=False)
    init = _frames.read_frame(fd_in, 64 << 20)
    layers = _lockdown.lockdown(init) if init["lockdown"] else {"errors": {}}
    worker = Worker(init, fd_in, fd_out)
    worker.install_signals()
    sys.stdout = worker.stdout
    sys.stderr = worker.stderr
    _patch_thread_start(worker)
    _threads.track_raw_threads()
    worker.host_calls.bind(worker.ns, list(init["host_functions"]))
    threading.Thread(target=worker.reader, name="sandbox-reader", daemon=True).start()
    prelude_error = worker.run_prelude(str(init["prelude"]), list(init["reserved"]))
    worker.send(
        {
            "type": "hello",
            "pid": os.getpid(),
            "uid": os.getuid(),
            "layers": layers,
            "prelude_error": prelude_error,
        }
    )
    worker.serve()


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BaseException:
        try:
            os.write(2, traceback.format_exc().encode())
        finally:
            _exit(70)
