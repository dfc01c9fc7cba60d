"""Host side of the sandbox: spawns, talks to, supervises and respawns the worker process.

Every byte from the worker is untrusted. Frames are read with a size bound, decoded as JSON,
checked against a small schema and an allow-list of host functions; any anomaly kills the
worker (the next ``exec`` respawns it). Pickle never crosses the boundary.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import re
import select
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox import _worker
from sandbox.errors import SandboxError, SandboxUnavailableError
from sandbox.isolation import IsolationReport, bwrap_path, detect_isolation

logger = logging.getLogger(__name__)

HostFunction = Callable[..., Any]

HEADER = struct.Struct(">I")
WORKER_SCRIPT = _worker.WORKER_FILE
START_TIMEOUT = 20.0
INTERRUPT_GRACE = 1.0
WORKER_NOFILE = 64
STDERR_TAIL = 4096
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_EXC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True)
class SessionConfig:
    """Limits and data for one sandboxed REPL session (see the package docstring)."""

    root: Path | None = None
    readable_paths: tuple[Path, ...] = ()
    lazy_text: Mapping[str, Path] = field(default_factory=dict)
    prelude: str = ""
    reserved: frozenset[str] = frozenset()
    exec_timeout: float = 30.0
    hard_timeout_grace: float = 5.0
    output_limit: int = 20_000
    memory_bytes: int | None = None
    cpu_seconds: int = 900
    max_host_calls: int = 100_000
    max_message_bytes: int = 8 * 1024 * 1024
    allow_unsafe: bool = False
    use_bwrap: bool | None = None


@dataclass(frozen=True)
class ExecResult:
    """What one cell produced; ``error`` also carries restart notices meant for the model."""

    stdout: str
    stderr: str
    error: str | None
    value: str | None
    truncated: bool
    timed_out: bool
    restarted: bool
    duration: float


class _ProtocolError(Exception):
    pass


class _Spawner:
    """Owns the thread that forks workers.

    ``--die-with-parent`` (PR_SET_PDEATHSIG) fires when the *thread* that forked the child
    exits, so forking from whatever thread happens to call ``exec`` could kill the worker
    later; this thread lives exactly as long as the session.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._loop, name="sandbox-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def run(self, fn: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut.result()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _memory_limit(config: SessionConfig) -> int:
    if config.memory_bytes is not None:
        return config.memory_bytes
    lazy = sum(os.path.getsize(p) for p in config.lazy_text.values())
    return (1 << 30) + 3 * lazy


def _worker_env() -> dict[str, str]:
    """A minimal environment: nothing from the host (API keys!) reaches the worker."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "MALLOC_ARENA_MAX": "2",
        "HOME": "/nonexistent",
    }


def _describe_exit(code: int | None, via_bwrap: bool) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        return f"worker killed by {signal.Signals(-code).name}"
    if via_bwrap and code > 128 and code - 128 in signal.valid_signals():
        return f"worker killed by {signal.Signals(code - 128).name}"
    return f"worker exited with status {code}"


class _WorkerHandle:
    """One worker process, its pipes and the thread that reads from it."""

    def __init__(
        self,
        session: Session,
        proc: subprocess.Popen[bytes],
        to_fd: int,
        from_fd: int,
        err_fd: int,
        via_bwrap: bool,
    ) -> None:
        self.session = session
        self.proc = proc
        self.to_fd = to_fd
        self.from_fd = from_fd
        self.err_fd = err_fd
        self.via_bwrap = via_bwrap
        self.max_message = session.config.max_message_bytes
        self.results: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.write_lock = threading.Lock()
        self.proc_lock = threading.Lock()
        self.expect: tuple[str, int] | None = None
        self.hello_seen = False
        self.kill_reason: str | None = None
        self.dead = False
        self.stderr_tail = bytearray()
        os.set_blocking(to_fd, False)
        self.thread = threading.Thread(target=self._io_loop, name="sandbox-io", daemon=True)
        self.thread.start()

    # writing
    def send(self, msg: dict[str, Any], timeout: float) -> None:
        data = json.dumps(msg).encode()
        frame = HEADER.pack(len(data)) + data
        deadline = time.monotonic() + timeout
        with self.write_lock:
            if self.to_fd < 0:
                raise BrokenPipeError("worker is gone")
            view = memoryview(frame)
            poller = select.poll()
            poller.register(self.to_fd, select.POLLOUT)
            while view:
                try:
                    view = view[os.write(self.to_fd, view) :]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("worker is not reading its input") from None
                    poller.poll(min(remaining, 0.1) * 1000)

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
        open_fds = 2
        try:
            while open_fds and self.kill_reason is None:
                for key, _ in sel.select():
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 1 << 20)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        sel.unregister(fd)
                        open_fds -= 1
                        if key.data == "proto":
                            open_fds = 0
                        continue
                    if key.data == "err":
                        self.stderr_tail += chunk
                        del self.stderr_tail[:-STDERR_TAIL]
                        continue
                    buf += chunk
                    try:
                        self._parse(buf)
                    except _ProtocolError as exc:
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
                reason = _describe_exit(code, self.via_bwrap)
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
        while len(buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(buf)
            if size > self.max_message:
                raise _ProtocolError(f"frame of {size} bytes exceeds {self.max_message}")
            if len(buf) < HEADER.size + size:
                return
            payload = bytes(buf[HEADER.size : HEADER.size + size])
            del buf[: HEADER.size + size]
            try:
                msg = json.loads(payload)
            except (ValueError, RecursionError) as exc:
                raise _ProtocolError(f"undecodable frame: {exc}") from None
            self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise _ProtocolError("frame is not an object")
        kind = msg.get("type")
        if kind == "call" and self.hello_seen:
            call_id, name = msg.get("id"), msg.get("name")
            args, kwargs = msg.get("args"), msg.get("kwargs")
            if not (
                _is_int(call_id)
                and isinstance(name, str)
                and isinstance(args, list)
                and isinstance(kwargs, dict)
            ):
                raise _ProtocolError("malformed call")
            if name not in self.session.functions:
                raise _ProtocolError(f"call to unknown host function {name[:80]!r}")
            self.session.on_call(self, _as_int(call_id), name, args, kwargs)
        elif kind == "hello" and not self.hello_seen:
            if not (isinstance(msg.get("layers"), dict) and _is_int(msg.get("uid"))):
                raise _ProtocolError("malformed hello")
            self.hello_seen = True
            self.results.put(("hello", msg))
        elif kind == "done" and self.expect is not None and self.expect == ("exec", msg.get("id")):
            ok = all(isinstance(msg.get(k), str) for k in ("stdout", "stderr")) and all(
                isinstance(msg.get(k), (str, type(None))) for k in ("error", "value")
            )
            if not (ok and isinstance(msg.get("truncated"), bool)):
                raise _ProtocolError("malformed exec result")
            self.expect = None
            self.results.put(("done", msg))
        elif kind == "value" and self.expect is not None and self.expect == ("get", msg.get("id")):
            if not isinstance(msg.get("found"), bool):
                raise _ProtocolError("malformed value")
            self.expect = None
            self.results.put(("value", msg))
        else:
            raise _ProtocolError(f"unexpected message type {str(kind)[:40]!r}")


def _as_int(value: Any) -> int:
    assert isinstance(value, int)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Session:
    """A persistent, isolated Python REPL in a separate worker process.

    ``exec`` is serialised by a lock; ``interrupt`` and ``close`` may be called from other
    threads. Host functions run in a thread pool so that several worker threads can wait on
    slow host calls (e.g. LLM requests) at the same time.
    """

    def __init__(self, config: SessionConfig, host_functions: Mapping[str, HostFunction]) -> None:
        for name in host_functions:
            if not _NAME.fullmatch(name):
                raise ValueError(f"host function name {name!r} is not a dotted identifier")
        self.config = config
        self.functions: dict[str, HostFunction] = dict(host_functions)
        self.isolation = IsolationReport()
        self.restarts = 0
        self._exec_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._handle: _WorkerHandle | None = None
        self._spawner: _Spawner | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ids = itertools.count(1)
        self._calls = 0
        self._current: tuple[_WorkerHandle, int] | None = None
        self._interrupt_at: float | None = None
        self._closed = False
        self._started = False
        self._pending_notice: str | None = None
        self._use_bwrap: bool | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the worker (idempotent); refuses when isolation is insufficient."""
        with self._exec_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        self._check_open()
        if self._started:
            return
        available = detect_isolation()
        if available.missing_core:
            if not self.config.allow_unsafe:
                raise SandboxUnavailableError(
                    "refusing to run untrusted code: isolation layers missing: "
                    f"{', '.join(available.missing_core)} ({available.describe()}); "
                    "set SessionConfig(allow_unsafe=True) to run without them (UNSAFE)"
                )
            logger.warning(
                "UNSAFE sandbox: running without %s (%s)",
                ", ".join(available.missing_core),
                available.describe(),
            )
        if self.config.use_bwrap is None:
            self._use_bwrap = available.bwrap
        elif self.config.use_bwrap and not available.bwrap:
            raise SandboxUnavailableError("use_bwrap=True but bubblewrap does not work here")
        else:
            self._use_bwrap = self.config.use_bwrap
        self._spawner = _Spawner()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sandbox-call")
        self._started = True
        try:
            try:
                self._handle = self._spawn()
            except SandboxError as exc:
                if isinstance(exc, SandboxUnavailableError) or not (
                    self.config.use_bwrap is None and self._use_bwrap
                ):
                    raise
                logger.warning("sandbox worker failed under bubblewrap, retrying without: %s", exc)
                self._use_bwrap = False
                self._handle = self._spawn()
        except BaseException:
            self._shutdown_threads()
            self._started = False
            raise

    def close(self) -> None:
        """Kill the worker and join every thread the session started."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        handle = self._handle
        if handle is not None:
            handle.kill("session closed")
        with self._exec_lock:
            handle = self._handle
            self._handle = None
            if handle is not None:
                handle.kill("session closed")
                handle.join()
            self._shutdown_threads()

    def _shutdown_threads(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._spawner is not None:
            self._spawner.stop()
            self._spawner = None

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("session is closed")

    # --- spawning ------------------------------------------------------------------------
    def _readable(self) -> list[str]:
        cfg = self.config
        paths = [cfg.root] if cfg.root is not None else []
        paths += list(cfg.readable_paths) + list(cfg.lazy_text.values())
        return [os.path.realpath(p) for p in paths]

    def _bwrap_command(self, readable: list[str], cwd: str) -> list[str]:
        exe = bwrap_path()
        if exe is None:
            raise SandboxUnavailableError("bubblewrap not found")
        cmd = [
            exe,
            "--unshare-all", "--unshare-user",
            "--uid", "65534", "--gid", "65534",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--hostname", "sandbox",
            "--dev", "/dev",
        ]  # fmt: skip
        binds = ["/usr", "/etc/ld.so.cache"]
        for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                binds.append(top)
        binds += [
            os.path.realpath(p)
            for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
        ]
        binds += [
            os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(WORKER_SCRIPT),
            *readable,
        ]
        chosen: list[str] = []
        for path in sorted({os.path.normpath(p) for p in binds if os.path.exists(p)}):
            if not any(path == c or path.startswith(c.rstrip("/") + "/") for c in chosen):
                chosen.append(path)
        for path in chosen:
            cmd += ["--ro-bind", path, path]
        cmd += ["--chdir", cwd, "--"]
        return cmd

    def _spawn(self) -> _WorkerHandle:
        assert self._spawner is not None
        cfg = self.config
        readable = self._readable()
        cwd = os.path.realpath(cfg.root) if cfg.root is not None else "/"
        use_bwrap = bool(self._use_bwrap)
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        err_r, err_w = os.pipe()
        cmd = [sys.executable, "-I", "-B", WORKER_SCRIPT, str(to_r), str(from_w)]
        if use_bwrap:
            cmd = self._bwrap_command(readable, cwd) + cmd

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                pass_fds=(to_r, from_w),
                env=_worker_env(),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )

        try:
            proc = self._spawner.run(popen)
        except BaseException:
            for fd in (to_r, to_w, from_r, from_w, err_r, err_w):
                os.close(fd)
            raise
        finally:
            for fd in (to_r, from_w, err_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        handle = _WorkerHandle(self, proc, to_w, from_r, err_r, use_bwrap)
        init = {
            "type": "init",
            "lockdown": True,
            "allow_unsafe": cfg.allow_unsafe,
            "memory_bytes": _memory_limit(cfg),
            "cpu_seconds": cfg.cpu_seconds,
            "nofile": WORKER_NOFILE,
            "readable": readable,
            "lazy": {k: os.path.realpath(v) for k, v in cfg.lazy_text.items()},
            "prelude": cfg.prelude,
            "reserved": sorted(cfg.reserved),
            "host_functions": sorted(self.functions),
            "output_limit": cfg.output_limit,
            "max_message_bytes": cfg.max_message_bytes,
            "max_host_calls": cfg.max_host_calls,
            "exec_timeout": cfg.exec_timeout,
        }
        try:
            handle.send(init, timeout=START_TIMEOUT)
            kind, msg = handle.results.get(timeout=START_TIMEOUT)
        except (OSError, TimeoutError, queue.Empty) as exc:
            kind, msg = "dead", f"no hello from worker: {exc}"
        if kind != "hello":
            handle.kill("startup failed")
            handle.join()
            tail = handle.stderr_tail.decode(errors="replace")
            raise SandboxError(f"sandbox worker failed to start ({msg}): {tail[-2000:]}")
        try:
            self.isolation = self._verify(msg, use_bwrap)
            if msg.get("prelude_error"):
                raise SandboxError(f"sandbox prelude failed:\n{msg['prelude_error']}")
        except BaseException:
            handle.kill("startup refused")
            handle.join()
            raise
        return handle

    def _verify(self, hello: dict[str, Any], use_bwrap: bool) -> IsolationReport:
        layers = hello["layers"]
        errors = layers.get("errors") or {}
        abi = layers.get("landlock")
        report = IsolationReport(
            rlimits=layers.get("rlimits") is True,
            no_new_privs=layers.get("no_new_privs") is True,
            landlock=_is_int(abi) and abi > 0,
            landlock_abi=abi if _is_int(abi) else 0,
            seccomp=layers.get("seccomp") is True,
            bwrap=use_bwrap and hello["uid"] != 0,
            errors=tuple(f"{k}: {v}" for k, v in errors.items())
            if isinstance(errors, dict)
            else (),
        )
        if report.missing_core:
            if not self.config.allow_unsafe:
                raise SandboxUnavailableError(
                    f"worker could not apply {', '.join(report.missing_core)} "
                    f"({report.describe()}); set SessionConfig(allow_unsafe=True) to run anyway"
                )
            logger.warning("UNSAFE sandbox worker: %s", report.describe())
        return report

    def _ensure_worker(self) -> tuple[_WorkerHandle, str | None]:
        """The live worker, respawning a dead one; also returns a pending restart notice."""
        self._check_open()
        if not self._started:
            self._start_locked()
            assert self._handle is not None
            return self._handle, None
        handle = self._handle
        if handle is None or handle.dead or handle.kill_reason is not None:
            reason = handle.kill_reason if handle is not None else None
            if handle is not None:
                handle.kill("respawn")
                handle.join()
                notice = self._pending_notice or (
                    f"The sandbox worker had stopped ({reason or 'worker exited'}) and was "
                    "restarted before this cell ran: ALL VARIABLES FROM EARLIER CELLS WERE LOST."
                )
                self._pending_notice = notice
            self._handle = None
            handle = self._spawn()
            self._handle = handle
            self.restarts += 1
        pending, self._pending_notice = self._pending_notice, None
        return handle, pending

    def _respawn_after(self, handle: _WorkerHandle) -> None:
        handle.join()
        if self._closed:
            return
        try:
            self._handle = self._spawn()
            self.restarts += 1
        except Exception:
            logger.exception("sandbox respawn failed; will retry on the next exec")
            self._handle = None

    # --- host calls ----------------------------------------------------------------------
    def on_call(
        self,
        handle: _WorkerHandle,
        call_id: int,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> None:
        """Runs in the io thread: budget check, then hand the call to the pool."""
        with self._state_lock:
            self._calls += 1
            over = self._calls > self.config.max_host_calls
        pool = self._pool
        if over or pool is None:
            reply = {
                "type": "result",
                "id": call_id,
                "ok": False,
                "exc_type": "RuntimeError",
                "message": f"host call budget exhausted ({self.config.max_host_calls} calls)",
            }
            self._reply(handle, reply)
            return
        try:
            pool.submit(self._serve_call, handle, call_id, name, args, kwargs)
        except RuntimeError:
            pass

    def _serve_call(
        self,
        handle: _WorkerHandle,
        call_id: int,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> None:
        try:
            value = self.functions[name](*args, **kwargs)
            reply: dict[str, Any] = {"type": "result", "id": call_id, "ok": True, "value": value}
            size = len(json.dumps(reply))
            if size > self.config.max_message_bytes - HEADER.size:
                raise ValueError(f"result of {name} too large ({size} bytes)")
        except Exception as exc:
            exc_name = type(exc).__name__
            message = str(exc)
            if isinstance(exc, KeyError) and len(exc.args) == 1:
                message = str(exc.args[0])
            reply = {
                "type": "result",
                "id": call_id,
                "ok": False,
                "exc_type": exc_name if _EXC_NAME.fullmatch(exc_name) else "RuntimeError",
                "message": message[:10_000],
            }
        self._reply(handle, reply)

    def _reply(self, handle: _WorkerHandle, reply: dict[str, Any]) -> None:
        try:
            handle.send(reply, timeout=self.config.exec_timeout + self.config.hard_timeout_grace)
        except TimeoutError:
            handle.kill("worker stopped reading host-call results")
        except (OSError, TypeError, ValueError) as exc:
            logger.debug("dropping host call reply: %s", exc)

    # --- exec / get / interrupt ----------------------------------------------------------
    def exec(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run ``code`` in the persistent namespace; never raises for model errors."""
        limit = self.config.exec_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if len(code.encode()) > self.config.max_message_bytes - 4096:
            return ExecResult(
                stdout="",
                stderr="",
                error=f"SandboxError: code too large ({len(code)} characters); nothing was run",
                value=None,
                truncated=False,
                timed_out=False,
                restarted=False,
                duration=0.0,
            )
        with self._exec_lock:
            handle, notice = self._ensure_worker()
            req = next(self._ids)
            self._interrupt_at = None
            self._current = (handle, req)
            try:
                handle.expect = ("exec", req)
                deadline = t0 + limit + self.config.hard_timeout_grace
                msg = {"type": "exec", "id": req, "code": code, "timeout": limit}
                kind, payload = self._request(handle, msg, deadline)
            finally:
                self._current = None
            duration = time.monotonic() - t0
            if kind == "done":
                error = payload["error"]
                if notice:
                    error = notice + ("\n" + error if error else "")
                return ExecResult(
                    stdout=self._cap(payload["stdout"]),
                    stderr=self._cap(payload["stderr"]),
                    error=self._cap(error) if error is not None else None,
                    value=self._cap(payload["value"]) if payload["value"] is not None else None,
                    truncated=bool(payload["truncated"]),
                    timed_out=bool(payload.get("timed_out")),
                    restarted=notice is not None,
                    duration=duration,
                )
            timed_out = kind == "hard-timeout"
            if timed_out:
                why = (
                    f"The cell did not stop within its {limit:g} s time limit "
                    f"(+{self.config.hard_timeout_grace:g} s grace), so the sandbox worker was "
                    "killed."
                )
            elif kind == "interrupted":
                why = "The cell was interrupted and did not stop, so the worker was killed."
            else:
                tail = handle.stderr_tail.decode(errors="replace")[-2000:]
                why = f"The sandbox worker died while running this cell ({payload})."
                if tail.strip():
                    why += f"\nWorker stderr:\n{tail}"
            self._respawn_after(handle)
            error = (
                why + " It has been restarted: ALL VARIABLES FROM EARLIER CELLS WERE LOST; "
                "re-create what you need."
            )
            if notice:
                error = notice + "\n" + error
            return ExecResult(
                stdout="",
                stderr="",
                error=error,
                value=None,
                truncated=False,
                timed_out=timed_out,
                restarted=True,
                duration=duration,
            )

    def _cap(self, text: str) -> str:
        limit = self.config.output_limit + 500
        if len(text) > limit:
            return text[:limit] + f"\n[... truncated by host: {len(text) - limit} characters ...]"
        return text

    def _request(
        self, handle: _WorkerHandle, msg: dict[str, Any], deadline: float
    ) -> tuple[str, Any]:
        try:
            handle.send(msg, timeout=max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            handle.kill("worker stopped reading its input")
            return "hard-timeout", None
        except OSError:
            pass
        while True:
            now = time.monotonic()
            limit = deadline
            interrupted = self._interrupt_at
            if interrupted is not None:
                limit = min(limit, interrupted + INTERRUPT_GRACE)
            if now >= limit and not handle.dead:
                if interrupted is not None and now >= interrupted + INTERRUPT_GRACE:
                    kind = "interrupted"
                else:
                    kind = "hard-timeout"
                handle.kill(kind)
                handle.join()
                return kind, None
            try:
                return handle.results.get(timeout=max(0.0, min(limit - now, 0.05)))
            except queue.Empty:
                continue

    def get(self, name: str, max_bytes: int = 1_000_000) -> Any:
        """JSON value of a session variable (repr text when not JSON), ``None`` if absent."""
        max_bytes = min(max_bytes, self.config.max_message_bytes // 2)
        with self._exec_lock:
            handle, notice = self._ensure_worker()
            if notice:
                self._pending_notice = notice
            req = next(self._ids)
            handle.expect = ("get", req)
            deadline = time.monotonic() + self.config.exec_timeout + self.config.hard_timeout_grace
            msg = {"type": "get", "id": req, "name": name, "max_bytes": max_bytes}
            kind, payload = self._request(handle, msg, deadline)
            if kind != "value":
                self._respawn_after(handle)
                self._pending_notice = (
                    "The sandbox worker was restarted while the host read a variable: "
                    "ALL VARIABLES FROM EARLIER CELLS WERE LOST."
                )
                return None
            return payload.get("value") if payload.get("found") else None

    def interrupt(self) -> None:
        """Ask the running cell to stop; the worker is killed if it has not within ~1 s."""
        current = self._current
        if current is None:
            return
        handle, req = current
        self._interrupt_at = time.monotonic()
        try:
            handle.send({"type": "interrupt", "id": req}, timeout=0.5)
        except (OSError, TimeoutError):
            pass
