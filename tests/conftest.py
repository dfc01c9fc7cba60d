"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rlm_mcp.testing import LoopbackLLMServer
from tests.polling import poll


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (watchers, pools, servers)."""
    before = set(threading.enumerate())
    yield
    started = [t for t in threading.enumerate() if t not in before]
    poll(lambda: not any(t.is_alive() for t in started), 2.0)
    leaked = [t for t in started if t.is_alive()]
    if leaked:
        pytest.fail(f"test leaked threads: {', '.join(t.name for t in leaked)}")


@pytest.fixture
def llm() -> Iterator[LoopbackLLMServer]:
    """A loopback OpenAI-compatible server; each test scripts it (``llm.responder = ...``)."""
    with LoopbackLLMServer() as server:
        yield server
