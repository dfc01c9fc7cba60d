"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rlm_mcp.testing import LoopbackLLMServer


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (watchers, pools, servers)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    while leaked and time.monotonic() < deadline:
        leaked[0].join(timeout=0.05)
        leaked = [t for t in leaked if t.is_alive()]
    if leaked:
        pytest.fail(f"test leaked threads: {', '.join(t.name for t in leaked)}")


@pytest.fixture
def llm() -> Iterator[LoopbackLLMServer]:
    """A loopback OpenAI-compatible server; each test scripts it (``llm.responder = ...``)."""
    with LoopbackLLMServer() as server:
        yield server
