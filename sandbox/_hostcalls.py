"""Host functions as model code sees them: plain callables that forward to the host.

A call is one ``call`` frame out and one ``result`` frame back, matched by id, so that several
worker threads can wait on slow host functions (LLM requests) at once. Each call in flight holds
a host thread and its arguments in host memory, so at most ``max_concurrent`` are in flight: the
others wait for a slot, as long as their cell may run, then fail with a ``TimeoutError`` that
names the setting. The host enforces the same cap (the worker is untrusted); for the two counts
to agree, a slot is freed when the host's reply arrives, not when the caller stops waiting (a
timed-out or stopped caller leaves its call running on the host).

The worker counts calls against its own budget as well as the host's, and only builtin
exception classes cross back; anything else the host raises becomes a ``RuntimeError``
subclass of the same name. Waits are sliced so that the asynchronous exception the worker
raises to stop a leftover thread reaches a thread blocked in a host call.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ._frames import HEADER, encode

_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_monotonic = time.monotonic
WAIT_SLICE = 0.05


@functools.lru_cache(maxsize=256)
def host_exception_type(name: str) -> type[Exception]:
    """Builtin exceptions keep their class; any other host exception becomes a RuntimeError."""
    if name in _BUILTIN_EXCEPTIONS:
        return _BUILTIN_EXCEPTIONS[name]
    if not _IDENT.fullmatch(name):
        name = "HostError"
    return type(name, (RuntimeError,), {"__module__": "host"})


class HostNamespace:
    """Groups dotted host functions (``repo.grep``) under one name."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __repr__(self) -> str:
        names = sorted(k for k in vars(self) if not k.startswith("_"))
        return f"<host namespace {self.__name}: {', '.join(names)}>"


class HostCalls:
    """Outstanding calls to host functions; the worker's reader thread delivers the replies."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        max_calls: int,
        max_message: int,
        *,
        max_concurrent: int,
        slot_timeout: float,
    ) -> None:
        self.send = send
        self.max_calls = max_calls
        self.max_message = max_message
        self.max_concurrent = max_concurrent
        self.slot_timeout = slot_timeout
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.pending: dict[int, list[Any]] = {}
        self.pending_lock = threading.Lock()
        self.call_ids = itertools.count(1)
        self.calls = 0

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self._take_slot(name)
        # [reply arrived, reply, still holds the slot]: whichever of the caller's error path
        # and ``deliver`` comes first frees the slot, exactly once.
        slot: list[Any] = [threading.Event(), None, True]
        call_id: int | None = None
        try:
            with self.pending_lock:
                if self.calls >= self.max_calls:
                    raise RuntimeError(f"host call budget exhausted ({self.max_calls} calls)")
                self.calls += 1
                call_id = next(self.call_ids)
            msg = {"type": "call", "id": call_id, "name": name, "args": args, "kwargs": kwargs}
            try:
                frame = encode(msg)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: arguments must be JSON values ({exc})") from None
            if len(frame) > self.max_message:
                raise ValueError(
                    f"{name}: arguments too large ({len(frame) - HEADER.size} bytes; "
                    f"limit {self.max_message})"
                )
            with self.pending_lock:
                self.pending[call_id] = slot
            self.send(frame)
        except BaseException:
            if call_id is not None:
                with self.pending_lock:
                    self.pending.pop(call_id, None)
            self._free(slot)
            raise
        while not slot[0].wait(WAIT_SLICE):
            pass
        reply = slot[1]
        if reply.get("ok"):
            return reply.get("value")
        exc_type = host_exception_type(str(reply.get("exc_type", "RuntimeError")))
        raise exc_type(str(reply.get("message", "")))

    def _take_slot(self, name: str) -> None:
        deadline = _monotonic() + self.slot_timeout
        while not self.slots.acquire(timeout=WAIT_SLICE):
            if _monotonic() >= deadline:
                cap = self.max_concurrent
                raise TimeoutError(
                    f"{name}: waited {self.slot_timeout:g} s for a free host call slot; at most "
                    f"{cap} host calls may be in flight at once (max_concurrent_host_calls="
                    f"{cap}), so call from fewer threads or pass several items per call"
                )

    def deliver(self, msg: Any) -> None:
        """Hand a ``result`` frame to the thread waiting for it and free its slot.

        Stale or unknown ids are dropped without touching the slots.
        """
        with self.pending_lock:
            slot = self.pending.pop(msg.get("id"), None)
        if slot is not None:
            slot[1] = msg
            slot[0].set()
            self._free(slot)

    def _free(self, slot: list[Any]) -> None:
        with self.pending_lock:
            held, slot[2] = slot[2], False
        if held:
            self.slots.release()

    def bind(self, ns: dict[str, Any], names: list[str]) -> None:
        """Put a callable for each dotted name into ``ns``, nesting ``HostNamespace`` objects."""
        for full in names:
            parts = full.split(".")
            target: Any = ns
            for i, part in enumerate(parts[:-1]):
                if isinstance(target, dict):
                    obj = target.get(part)
                    if not isinstance(obj, HostNamespace):
                        obj = HostNamespace(".".join(parts[: i + 1]))
                        target[part] = obj
                else:
                    obj = getattr(target, part, None)
                    if not isinstance(obj, HostNamespace):
                        obj = HostNamespace(".".join(parts[: i + 1]))
                        setattr(target, part, obj)
                target = obj
            fn = self._make_function(full)
            if isinstance(target, dict):
                target[parts[-1]] = fn
            else:
                setattr(target, parts[-1], fn)

    def _make_function(self, full: str) -> Callable[..., Any]:
        call = self.call

        def host_function(*args: Any, **kwargs: Any) -> Any:
            return call(full, list(args), kwargs)

        host_function.__name__ = full.rsplit(".", 1)[-1]
        host_function.__qualname__ = full
        host_function.__doc__ = f"Calls the host function {full!r}."
        return host_function
