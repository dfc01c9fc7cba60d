"""Choosing where an index lives: a SQLite file per repository, or one shared PostgreSQL.

:func:`open_store` is the one place that decides, from
:attr:`~rlm_mcp.config.IndexSettings.index_url`: unset, the embedded default
(a SQLite file under the cache directory); a ``postgresql://`` URL, the shared
database, where the repository is named by :func:`repo_identity` (its remote
URL, or its root when it has none, plus a commit when the index is pinned to
one), so every machine that checks out the same repository shares its index.
:func:`load_indexed` is :func:`~rlm_mcp.index.repository.load` on that store.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rlm_mcp.config import IndexSettings, default_cache_dir
from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.repository import Progress, Repository, load
from rlm_mcp.index.storage import IndexStore
from rlm_mcp.index.store import SQLiteStore, db_path_for

__all__ = ["git_remote", "load_indexed", "open_store", "repo_identity"]

_GIT_TIMEOUT_S = 10


def _resolve(path: str | os.PathLike[str]) -> Path:
    given = Path(path).expanduser()
    try:
        return given.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RepositoryNotFound(f"repository path does not exist: {given} ({exc})") from None


def git_remote(root: Path) -> str | None:
    """``remote.origin.url`` of the repository at ``root`` without credentials, or ``None``."""
    if not root.is_dir():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    url = out.stdout.strip()
    if out.returncode != 0 or not url:
        return None
    if "://" in url:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        url = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return url


def repo_identity(path: str | os.PathLike[str], commit: str | None = None) -> str:
    """The stable name of a repository in a shared index.

    The remote's URL when the checkout has an ``origin`` (so every clone shares
    one index), else ``file://`` and the resolved root; ``@commit`` appended when
    the index is pinned to a commit (``rlm-mcp index --commit``). A single file
    is named by its own resolved path.
    """
    resolved = _resolve(path)
    remote = git_remote(resolved) if resolved.is_dir() else None
    if remote is not None:
        top = _toplevel(resolved)
        sub = "" if top is None or top == resolved else "/" + resolved.relative_to(top).as_posix()
        base = remote + ("#" + sub if sub else "")
    else:
        base = "file://" + str(resolved)
    return f"{base}@{commit}" if commit else base


def _toplevel(path: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    top = Path(out.stdout.strip()).resolve()
    return top if path == top or path.is_relative_to(top) else None


def open_store(
    settings: IndexSettings, path: str | os.PathLike[str], *, commit: str | None = None
) -> IndexStore:
    """The store for the repository at ``path``, chosen by ``settings.index_url``.

    Raises :class:`~rlm_mcp.errors.RepositoryNotFound` for a missing path and
    :class:`~rlm_mcp.errors.IndexUnavailable` when the database cannot be reached.
    """
    if settings.index_url:
        from rlm_mcp.index.pgstore import PostgresStore

        return PostgresStore(settings.index_url, repo_identity(path, commit))
    cache_dir = settings.cache_dir if settings.cache_dir is not None else default_cache_dir()
    return SQLiteStore(db_path_for(Path(cache_dir), _resolve(path)))


def load_indexed(
    path: str | os.PathLike[str],
    settings: IndexSettings = IndexSettings(),  # noqa: B008 - frozen, safe default
    *,
    progress: Progress | None = None,
    commit: str | None = None,
) -> Repository:
    """:func:`~rlm_mcp.index.repository.load` on the store :func:`open_store` chooses."""
    return load(path, settings, progress=progress, store=open_store(settings, path, commit=commit))
