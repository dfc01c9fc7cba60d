"""Waiting without sleeps: poll a condition with a deadline (threads and event loops)."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

__all__ = ["eventually", "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.005)


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Async :func:`wait_until`: poll without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await anyio.sleep(0.005)
