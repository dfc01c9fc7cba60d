"""Fixtures for sandbox tests: sessions with small timeouts, always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox import Session, SessionConfig
from tests.sandbox.sandbox_helpers import MakeSession


@pytest.fixture
def make_session() -> Iterator[MakeSession]:
    """Factory for started sessions; small timeouts keep kill/respawn tests fast."""
    sessions: list[Session] = []

    def make(functions: dict[str, Callable[..., Any]] | None = None, **kw: Any) -> Session:
        kw.setdefault("exec_timeout", 1.0)
        kw.setdefault("hard_timeout_grace", 0.5)
        session = Session(SessionConfig(**kw), functions or {})
        sessions.append(session)
        session.start()
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def session(make_session: MakeSession) -> Session:
    return make_session()
