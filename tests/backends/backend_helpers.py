"""Helpers shared by the backend tests (imported, not fixtures)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio

from rlm_mcp.backends import CompletionRequest, Message, OpenAICompatibleBackend

BackendFactory = Callable[..., OpenAICompatibleBackend]
"""What the ``new_backend`` fixture yields: keyword overrides in, backend out."""


def ask(text: str = "What is 6 * 7?", **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(messages=(Message("user", text),), **kwargs)


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
