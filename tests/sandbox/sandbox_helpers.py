"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox import Session

MakeSession = Callable[..., Session]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


def assert_usable(session: Session) -> None:
    """The session answers a fresh probe (possibly after a respawn)."""
    result = session.exec("probe_value = 40 + 2\nprobe_value")
    assert result.error is None or "restarted" in result.error
    assert result.value == "42"
