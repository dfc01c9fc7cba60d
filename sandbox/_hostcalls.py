"""Host functions as model code sees them: plain callables that forward to the host.

A call is one ``call`` frame out and one ``result`` frame back, matched by id, so that many
worker threads can wait on slow host functions (LLM requests) at once. The worker counts calls
against its own budget as well as the host's, and only builtin exception classes cross back;
anything else the host raises becomes a ``RuntimeError`` subclass of the same name.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import re
import threading
from collections.abc import Callable
from typing import Any

from ._frames import HEADER, encode

_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


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

    def __init__(self, send: Callable[[bytes], None], max_calls: int, max_message: int) -> None:
        self.send = send
        self.max_calls = max_calls
        self.max_message = max_message
        self.pending: dict[int, list[Any]] = {}
        self.pending_lock = threading.Lock()
        self.call_ids = itertools.count(1)
        self.calls = 0

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
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
        slot: list[Any] = [threading.Event(), None]
        with self.pending_lock:
            self.pending[call_id] = slot
        try:
            self.send(frame)
            slot[0].wait()
        finally:
            with self.pending_lock:
                self.pending.pop(call_id, None)
        reply = slot[1]
        if reply.get("ok"):
            return reply.get("value")
        exc_type = host_exception_type(str(reply.get("exc_type", "RuntimeError")))
        raise exc_type(str(reply.get("message", "")))

    def deliver(self, msg: Any) -> None:
        """Hand a ``result`` frame to the thread waiting for it; stale ids are dropped."""
        with self.pending_lock:
            slot = self.pending.get(msg.get("id"))
        if slot is not None:
            slot[1] = msg
            slot[0].set()

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
