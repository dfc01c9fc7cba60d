"""Fixtures for index tests: a settings object with a private cache, git helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from tests.index.index_helpers import GIT_ENV


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def settings(tmp_path_factory: pytest.TempPathFactory) -> IndexSettings:
    return IndexSettings(cache_dir=tmp_path_factory.mktemp("cache"), workers=2)


@pytest.fixture
def loader(settings: IndexSettings) -> Iterator[Callable[..., Repository]]:
    """``loader(path, **kw)`` loads and closes the repository at teardown."""
    opened: list[Repository] = []

    def _load(path: Path, **kw: object) -> Repository:
        repo = load(path, settings, **kw)  # type: ignore[arg-type]
        opened.append(repo)
        return repo

    yield _load
    for repo in opened:
        repo.close()


# -- PostgreSQL: a throwaway cluster for the session (tests/pg_cluster.py) -------------------

from tests.pg_cluster import pg_cluster  # noqa: E402, F401 - a session fixture
