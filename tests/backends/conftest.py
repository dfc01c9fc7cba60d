"""Fixtures for backend tests: a loopback server and fast-retrying backends."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.testing import LoopbackLLMServer
from tests.backends.backend_helpers import BackendFactory


def _loopback_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("loopback-llm")}


@pytest.fixture
def server() -> Iterator[LoopbackLLMServer]:
    """A running loopback server; asserts it leaves no threads behind."""
    before = _loopback_threads()
    with LoopbackLLMServer() as srv:
        yield srv
    assert _loopback_threads() - before == set()


@pytest.fixture
async def new_backend(server: LoopbackLLMServer) -> AsyncIterator[BackendFactory]:
    """Build backends against ``server`` with millisecond back-off; closes them after."""
    made: list[OpenAICompatibleBackend] = []

    def factory(**overrides: Any) -> OpenAICompatibleBackend:
        backend_kwargs = {
            k: overrides.pop(k)
            for k in ("backoff_base", "backoff_cap", "max_retry_after", "sleep", "rng")
            if k in overrides
        }
        backend_kwargs.setdefault("backoff_base", 0.001)
        fields: dict[str, Any] = {
            "model": "test-model",
            "base_url": server.base_url,
            "timeout_seconds": 5.0,
            "max_retries": 3,
        }
        fields.update(overrides)
        backend = OpenAICompatibleBackend(ModelEndpoint(**fields), **backend_kwargs)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()
