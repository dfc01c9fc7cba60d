"""The ``Session``: one sandboxed REPL and the lifecycle of the worker process behind it.

Starting a worker lives in ``_launch``, talking to it (bounded frames, schema checks, the
host-function allow-list) in ``_handle`` and serving its host calls in ``_hostserve``; this
module decides when a worker is started, verified, killed and respawned, and tells the model
when its variables were lost. Pickle never crosses the boundary.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sandbox._handle import WorkerHandle, is_int
from sandbox._hostserve import HostCallServer
from sandbox._launch import Spawner, bwrap_command, memory_limit, start_worker
from sandbox._types import ExecResult, HostFunction, SessionConfig
from sandbox.errors import SandboxError, SandboxUnavailableError
from sandbox.isolation import IsolationReport, detect_isolation

__all__ = ["ExecResult", "HostFunction", "Session", "SessionConfig"]

logger = logging.getLogger(__name__)

START_TIMEOUT = 20.0
INTERRUPT_GRACE = 1.0
THREAD_GRACE = 0.25
# The worker waits up to two graces for leftover threads after a cell (see ``_threads``).
SETTLE_ALLOWANCE = 2 * THREAD_GRACE + 0.25
WORKER_NOFILE = 64
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class Session:
    """A persistent, isolated Python REPL in a separate worker process.

    ``exec`` is serialised by a lock; ``interrupt`` and ``close`` may be called from other
    threads. Host functions run in a thread pool so that several worker threads can wait on
    slow host calls (e.g. LLM requests) at the same time, at most
    ``max_concurrent_host_calls`` of them.
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
        self._handle: WorkerHandle | None = None
        self._spawner: Spawner | None = None
        self._server: HostCallServer | None = None
        self._ids = itertools.count(1)
        self._current: tuple[WorkerHandle, int] | None = None
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
        self._spawner = Spawner()
        self._server = HostCallServer(self.config, self.functions)
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

    def rebind(self, functions: Mapping[str, HostFunction]) -> None:
        """Point host function names at new callables and restart the host-call budget.

        A REPL kept across queries (a session's follow-ups) keeps its variables while
        each query binds its own ``llm_query`` and friends. Only names the session
        started with can be rebound: the worker's allow-list is fixed at spawn.
        """
        unknown = sorted(set(functions) - set(self.functions))
        if unknown:
            raise ValueError(
                f"cannot bind host functions the session did not start with: {unknown}"
            )
        self.functions.update(functions)
        if self._server is not None:
            self._server.reset_budget()

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
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._spawner is not None:
            self._spawner.stop()
            self._spawner = None

    @property
    def worker_pid(self) -> int | None:
        """Host-side pid of the current worker (bubblewrap's when wrapped), for monitoring."""
        handle = self._handle
        return handle.proc.pid if handle is not None else None

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
        """A method rather than a direct call so that tests can make bubblewrap fail."""
        return bwrap_command(readable, cwd)

    def _spawn(self) -> WorkerHandle:
        assert self._spawner is not None and self._server is not None
        cfg = self.config
        readable = self._readable()
        cwd = os.path.realpath(cfg.root) if cfg.root is not None else "/"
        use_bwrap = bool(self._use_bwrap)
        wrapper = self._bwrap_command(readable, cwd) if use_bwrap else []
        proc, to_w, from_r, err_r = start_worker(self._spawner, wrapper, cwd)
        handle = WorkerHandle(
            proc,
            to_w,
            from_r,
            err_r,
            use_bwrap,
            max_message=cfg.max_message_bytes,
            functions=self.functions,
            on_call=self._server.on_call,
        )
        init = {
            "type": "init",
            "lockdown": True,
            "allow_unsafe": cfg.allow_unsafe,
            "memory_bytes": memory_limit(cfg),
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
            "max_concurrent_host_calls": cfg.max_concurrent_host_calls,
            "thread_grace": THREAD_GRACE,
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
            landlock=is_int(abi) and abi > 0,
            landlock_abi=abi if is_int(abi) else 0,
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

    def _ensure_worker(self) -> tuple[WorkerHandle, str | None]:
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

    def _recycle(self, handle: WorkerHandle, reason: str) -> None:
        """Replace a worker that answered but cannot be trusted to be idle."""
        logger.info("recycling the sandbox worker: %s", reason)
        handle.kill(reason)
        self._respawn_after(handle)

    def _respawn_after(self, handle: WorkerHandle) -> None:
        handle.join()
        if self._closed:
            return
        try:
            self._handle = self._spawn()
            self.restarts += 1
        except Exception:
            logger.exception("sandbox respawn failed; will retry on the next exec")
            self._handle = None

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
                deadline = t0 + limit + self.config.hard_timeout_grace + SETTLE_ALLOWANCE
                msg = {"type": "exec", "id": req, "code": code, "timeout": limit}
                kind, payload = self._request(handle, msg, deadline)
            finally:
                self._current = None
            duration = time.monotonic() - t0
            if kind == "done":
                error = payload["error"]
                restarted = notice is not None
                stuck = payload.get("threads_stuck", 0)
                if stuck:
                    restarted = True
                    self._recycle(handle, "background threads could not be stopped")
                    error = (error + "\n" if error else "") + (
                        f"{stuck} thread(s) started by this cell were still running when it "
                        "ended and could not be stopped (blocked outside Python code, or "
                        "catching SystemExit), so the sandbox worker was restarted: ALL "
                        "VARIABLES FROM EARLIER CELLS WERE LOST; re-create what you need. "
                        "Background threads are not allowed: join every thread before the "
                        "cell ends."
                    )
                if notice:
                    error = notice + ("\n" + error if error else "")
                return ExecResult(
                    stdout=self._cap(payload["stdout"]),
                    stderr=self._cap(payload["stderr"]),
                    error=self._cap(error) if error is not None else None,
                    value=self._cap(payload["value"]) if payload["value"] is not None else None,
                    truncated=bool(payload["truncated"]),
                    timed_out=bool(payload.get("timed_out")),
                    restarted=restarted,
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
        self, handle: WorkerHandle, msg: dict[str, Any], deadline: float
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
            cfg = self.config
            deadline = (
                time.monotonic() + cfg.exec_timeout + cfg.hard_timeout_grace + SETTLE_ALLOWANCE
            )
            msg = {"type": "get", "id": req, "name": name, "max_bytes": max_bytes}
            kind, payload = self._request(handle, msg, deadline)
            if kind == "value" and payload.get("threads_stuck"):
                self._recycle(handle, "background threads could not be stopped")
                self._pending_notice = (
                    "Threads started while the host read a variable could not be stopped, so "
                    "the sandbox worker was restarted: ALL VARIABLES FROM EARLIER CELLS WERE "
                    "LOST. Background threads are not allowed."
                )
            elif kind != "value":
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
