"""The one way tests wait: poll a condition until it holds or its time is up.

``wait_until`` (a plain or threaded test) and ``eventually`` (inside an event loop, where a
predicate may also be a coroutine function) return the predicate's first truthy value and
fail with an ``AssertionError`` that says what was awaited and what the predicate last
returned. ``poll`` and ``apoll`` are the same waits that hand back the last (falsy) value
instead of failing: for a test that checks something does *not* happen within a window, or
that goes on either way. Nothing else in the tests sleeps to wait for an event.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

import anyio

__all__ = ["apoll", "eventually", "poll", "wait_until"]

T = TypeVar("T")

INTERVAL = 0.005


def poll(predicate: Callable[[], T], timeout: float, *, interval: float = INTERVAL) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy.

    Returns that value, or the last falsy one once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 2.0,
    message: str | None = None,
    *,
    interval: float = INTERVAL,
) -> T:
    """:func:`poll`, failing with ``message`` (what was awaited) when time is up."""
    value = poll(predicate, timeout, interval=interval)
    if not value:
        raise AssertionError(_timed_out(predicate, timeout, message, value))
    return value


@overload
async def apoll(
    predicate: Callable[[], Awaitable[T]], timeout: float, *, interval: float = ...
) -> T: ...
@overload
async def apoll(predicate: Callable[[], T], timeout: float, *, interval: float = ...) -> T: ...
async def apoll(predicate: Callable[[], Any], timeout: float, *, interval: float = INTERVAL) -> Any:
    """Async :func:`poll`: waits without blocking the event loop; awaits an awaitable result."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() >= deadline:
            return value
        await anyio.sleep(interval)


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,
    message: str | None = ...,
    *,
    interval: float = ...,
) -> T: ...
@overload
async def eventually(
    predicate: Callable[[], T],
    timeout: float = ...,
    message: str | None = ...,
    *,
    interval: float = ...,
) -> T: ...
async def eventually(
    predicate: Callable[[], Any],
    timeout: float = 2.0,
    message: str | None = None,
    *,
    interval: float = INTERVAL,
) -> Any:
    """Async :func:`wait_until`: :func:`apoll`, failing with ``message`` when time is up."""
    value = await apoll(predicate, timeout, interval=interval)
    if not value:
        raise AssertionError(_timed_out(predicate, timeout, message, value))
    return value


def _timed_out(
    predicate: Callable[[], object], timeout: float, message: str | None, last: object
) -> str:
    return f"timed out after {timeout:g}s waiting for {message or _describe(predicate)} (last: {last!r})"


def _describe(predicate: Callable[[], object]) -> str:
    """A predicate's source line (a lambda says what it checks), else its name."""
    name = cast(str, getattr(predicate, "__qualname__", repr(predicate)))
    if name.endswith("<lambda>"):
        try:
            return inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            pass
    return name
