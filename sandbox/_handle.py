"""The host's end of one worker process: its pipes, the thread that reads them, and its death.

Every byte from the worker is untrusted. Frames are read with a size bound, decoded as JSON,
checked against a small schema and an allow-list of host functions; any anomaly kills the
worker's whole process group, and the session respawns it on the next ``exec``.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Container
from typing import Any

from sandbox._frames import FrameError, encode, pop_frames, write_all

logger = logging.getLogger(__name__)

STDERR_TAIL = 4096

OnCall = Callable[["WorkerHandle", int, str, list[Any], dict[str, Any]], None]


class _ProtocolError(Exception):
    pass


def describe_exit(code: int | None, via_bwrap: bool) -> str:
    """Why the worker stopped, in words; bubblewrap reports a child's signal as 128 + n."""
    if code is None:
        return "worker did not exit"
    if code < 0:
        return f"worker killed by {signal.Signals(-code).name}"
    if via_bwrap and code > 128 and code - 128 in signal.valid_signals():
        return f"worker killed by {signal.Signals(code - 128).name}"
    return f"worker exited with status {code}"


class WorkerHandle:
    """One worker process, its pipes and the thread that reads from it.

    ``functions`` is the allow-list of host function names the worker may call and
    ``on_call`` receives each valid call, on the io thread. ``calls_in_flight`` counts this
    worker's host calls that have not been answered yet; the session's host-call server keeps
    it, so that a cap applies per worker and a respawned worker starts from zero.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        to_fd: int,
        from_fd: int,
        err_fd: int,
        via_bwrap: bool,
        *,
        max_message: int,
        functions: Container[str],
        on_call: OnCall,
    ) -> None:
        self.functions = functions
        self.on_call = on_call
        self.proc = proc
        self.to_fd = to_fd
        self.from_fd = from_fd
        self.err_fd = err_fd
        self.via_bwrap = via_bwrap
        self.max_message = max_message
        self.results: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.write_lock = threading.Lock()
        self.proc_lock = threading.Lock()
        self.expect: tuple[str, int] | None = None
        self.hello_seen = False
        self.calls_in_flight = 0
        self.kill_reason: str | None = None
        self.dead = False
        self.stderr_tail = bytearray()
        os.set_blocking(to_fd, False)
        self.thread = threading.Thread(target=self._io_loop, name="sandbox-io", daemon=True)
        self.thread.start()

    # writing
    def send(self, msg: dict[str, Any], timeout: float) -> None:
        frame = encode(msg)
        deadline = time.monotonic() + timeout
        with self.write_lock:
            if self.to_fd < 0:
                raise BrokenPipeError("worker is gone")
            write_all(self.to_fd, frame, deadline)

    # lifecycle
    def kill(self, reason: str) -> None:
        with self.proc_lock:
            if self.kill_reason is None:
                self.kill_reason = reason
            if self.proc.returncode is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.kill()
        with self.write_lock:
            if self.to_fd >= 0:
                os.close(self.to_fd)
                self.to_fd = -1

    def join(self) -> None:
        if self.thread is not threading.current_thread():
            self.thread.join()

    def _reap(self, grace: float = 5.0) -> int | None:
        deadline = time.monotonic() + grace
        while True:
            with self.proc_lock:
                try:
                    return self.proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        try:
                            os.killpg(self.proc.pid, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
                        deadline = time.monotonic() + 5.0

    # reading
    def _io_loop(self) -> None:
        buf = bytearray()
        sel = selectors.DefaultSelector()
        sel.register(self.from_fd, selectors.EVENT_READ, "proto")
        sel.register(self.err_fd, selectors.EVENT_READ, "err")
        proto_open = True
        try:
            # The timeout lets a kill() from another thread end the loop even when
            # the worker's pipes stay silent.
            while proto_open and self.kill_reason is None:
                for key, _ in sel.select(timeout=0.5):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 1 << 20)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        sel.unregister(fd)
                        if key.data == "proto":
                            proto_open = False
                            break
                        continue
                    if key.data == "err":
                        self.stderr_tail += chunk
                        del self.stderr_tail[:-STDERR_TAIL]
                        continue
                    buf += chunk
                    try:
                        self._parse(buf)
                    except (_ProtocolError, FrameError) as exc:
                        logger.warning("sandbox worker broke the protocol: %s", exc)
                        self.kill(f"protocol violation by the worker ({exc})")
                        break
        except Exception as exc:
            logger.exception("sandbox io thread failed")
            self.kill(f"host io failure: {exc}")
        finally:
            sel.close()
            self._drain_stderr()
            if self.kill_reason is None:
                code = self._reap(grace=1.0)
                reason = describe_exit(code, self.via_bwrap)
                self.kill(reason)
            else:
                self.kill(self.kill_reason)
                self._reap()
                reason = self.kill_reason
            os.close(self.from_fd)
            os.close(self.err_fd)
            self.dead = True
            self.results.put(("dead", reason))

    def _drain_stderr(self) -> None:
        os.set_blocking(self.err_fd, False)
        try:
            while len(self.stderr_tail) < 1 << 20:
                chunk = os.read(self.err_fd, 1 << 16)
                if not chunk:
                    break
                self.stderr_tail += chunk
        except OSError:
            pass
        del self.stderr_tail[:-STDERR_TAIL]

    def _parse(self, buf: bytearray) -> None:
        for msg in pop_frames(buf, self.max_message):
            self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise _ProtocolError("frame is not an object")
        kind = msg.get("type")
        if kind == "call" and self.hello_seen:
            call_id, name = msg.get("id"), msg.get("name")
            args, kwargs = msg.get("args"), msg.get("kwargs")
            if not (
                is_int(call_id)
                and isinstance(name, str)
                and isinstance(args, list)
                and isinstance(kwargs, dict)
            ):
                raise _ProtocolError("malformed call")
            if name not in self.functions:
                raise _ProtocolError(f"call to unknown host function {name[:80]!r}")
            self.on_call(self, _as_int(call_id), name, args, kwargs)
        elif kind == "hello" and not self.hello_seen:
            if not (isinstance(msg.get("layers"), dict) and is_int(msg.get("uid"))):
                raise _ProtocolError("malformed hello")
            self.hello_seen = True
            self.results.put(("hello", msg))
        elif kind == "done" and self.expect is not None and self.expect == ("exec", msg.get("id")):
            ok = all(isinstance(msg.get(k), str) for k in ("stdout", "stderr")) and all(
                isinstance(msg.get(k), (str, type(None))) for k in ("error", "value")
            )
            if not (ok and isinstance(msg.get("truncated"), bool) and _stuck_ok(msg)):
                raise _ProtocolError("malformed exec result")
            self.expect = None
            self.results.put(("done", msg))
        elif kind == "value" and self.expect is not None and self.expect == ("get", msg.get("id")):
            if not (isinstance(msg.get("found"), bool) and _stuck_ok(msg)):
                raise _ProtocolError("malformed value")
            self.expect = None
            self.results.put(("value", msg))
        else:
            raise _ProtocolError(f"unexpected message type {str(kind)[:40]!r}")


def _stuck_ok(msg: dict[str, Any]) -> bool:
    """``threads_stuck``, when present, counts threads the worker failed to stop."""
    stuck = msg.get("threads_stuck", 0)
    return is_int(stuck) and stuck >= 0


def _as_int(value: Any) -> int:
    assert isinstance(value, int)
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
