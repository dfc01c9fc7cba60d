"""The host's side of host calls: the budget, the concurrency cap and the threads that run them.

Model code can call host functions from many threads at once, and each call in flight holds a
host thread plus its decoded arguments (up to ``max_message_bytes``) in host memory. The worker
keeps at most ``max_concurrent_host_calls`` calls in flight, but the worker is untrusted, so the
host enforces the same cap per worker: a call beyond it is refused at once with an error (a
well-behaved worker never sends one), never queued. The calls run on a pool of that many
threads, so calls that a killed worker left running delay a respawned worker's calls instead of
adding to them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sandbox._frames import HEADER
from sandbox._handle import WorkerHandle
from sandbox._types import HostFunction, SessionConfig

logger = logging.getLogger(__name__)

_EXC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class HostCallServer:
    """Checks and runs the host calls of one session's workers, one worker after another."""

    def __init__(self, config: SessionConfig, functions: Mapping[str, HostFunction]) -> None:
        self.config = config
        self.functions = functions
        self.calls = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_concurrent_host_calls, thread_name_prefix="sandbox-call"
        )

    def reset_budget(self) -> None:
        """Start counting host calls against ``max_host_calls`` from zero again."""
        with self._lock:
            self.calls = 0

    def shutdown(self) -> None:
        """Drop queued calls and wait for the running ones (host functions cannot be stopped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def on_call(
        self,
        handle: WorkerHandle,
        call_id: int,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> None:
        """Runs in the worker's io thread: cap and budget checks, then hand the call to the pool."""
        cap = self.config.max_concurrent_host_calls
        with self._lock:
            busy = handle.calls_in_flight >= cap
            over = False
            if not busy:
                self.calls += 1
                over = self.calls > self.config.max_host_calls
            if not (busy or over):
                handle.calls_in_flight += 1
        if busy or over:
            message = (
                f"call refused: {cap} host calls are already in flight "
                f"(max_concurrent_host_calls={cap})"
                if busy
                else f"host call budget exhausted ({self.config.max_host_calls} calls)"
            )
            self._reply(handle, _failure(call_id, "RuntimeError", message))
            return
        try:
            self._pool.submit(self._serve, handle, call_id, name, args, kwargs)
        except RuntimeError:
            with self._lock:
                handle.calls_in_flight -= 1
            self._reply(handle, _failure(call_id, "RuntimeError", "the session is closing"))

    def _serve(
        self,
        handle: WorkerHandle,
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
            reply = _failure(
                call_id,
                exc_name if _EXC_NAME.fullmatch(exc_name) else "RuntimeError",
                message[:10_000],
            )
        # Before the reply: the worker frees its slot on receipt and may send the next call
        # at once, which must not find this one still counted.
        with self._lock:
            handle.calls_in_flight -= 1
        self._reply(handle, reply)

    def _reply(self, handle: WorkerHandle, reply: dict[str, Any]) -> None:
        try:
            handle.send(reply, timeout=self.config.exec_timeout + self.config.hard_timeout_grace)
        except TimeoutError:
            handle.kill("worker stopped reading host-call results")
        except (OSError, TypeError, ValueError) as exc:
            logger.debug("dropping host call reply: %s", exc)


def _failure(call_id: int, exc_type: str, message: str) -> dict[str, Any]:
    return {"type": "result", "id": call_id, "ok": False, "exc_type": exc_type, "message": message}
