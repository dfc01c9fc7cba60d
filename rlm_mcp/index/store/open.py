"""Choosing where an index lives: a SQLite file per repository, or one shared PostgreSQL.

:func:`open_store` is the one place that decides, from
:attr:`~rlm_mcp.config.IndexSettings.index_url`: unset, the embedded default
(a SQLite file under the cache directory); a ``postgresql://`` URL, the shared
database, where the repository is named by :func:`repo_identity` (its remote
URL, or its root when it has none, plus a commit when the index is pinned to
one), so every machine that checks out the same repository shares its index.
:func:`~rlm_mcp.index.repository.load` opens its store here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from rlm_mcp.config import IndexSettings, default_cache_dir
from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.sqlite import SQLiteStore, db_path_for

if TYPE_CHECKING:
    from rlm_mcp.index.store.postgres.store import PostgresStore

__all__ = [
    "git_remote",
    "nearest_commit",
    "open_store",
    "repo_identity",
    "resolve_commit",
    "seed_from_nearest",
    "worktree_commit",
]

log = logging.getLogger(__name__)

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
    url = _git(root, "config", "--get", "remote.origin.url")
    if not url:
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
    shown = _git(path, "rev-parse", "--show-toplevel")
    if not shown:
        return None
    top = Path(shown).resolve()
    return top if path == top or path.is_relative_to(top) else None


def open_store(
    settings: IndexSettings, path: str | os.PathLike[str], *, commit: str | None = None
) -> IndexStore:
    """The store for the repository at ``path``, chosen by ``settings.index_url``.

    With a commit (``commit`` or ``settings.commit``) on PostgreSQL, a new
    identity starts as a copy of the nearest indexed commit's index
    (:func:`seed_from_nearest`), so the load that follows parses only the
    files that differ. Raises :class:`~rlm_mcp.errors.RepositoryNotFound` for
    a missing path and :class:`~rlm_mcp.errors.IndexUnavailable` when the
    database cannot be reached.
    """
    if settings.index_url:
        from rlm_mcp.index.store.postgres.store import PostgresStore

        commit = commit or settings.commit
        store = PostgresStore(settings.index_url, repo_identity(path, commit))
        if commit:
            try:
                seed_from_nearest(store, _resolve(path), commit, overlay=settings.commit_overlay)
            except BaseException:
                store.close()
                raise
        return store
    cache_dir = settings.cache_dir if settings.cache_dir is not None else default_cache_dir()
    return SQLiteStore(db_path_for(Path(cache_dir), _resolve(path)))


def _git(root: Path, *args: str) -> str | None:
    """``git -C root args``'s output, stripped; ``None`` when git fails or is missing."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def resolve_commit(root: Path, rev: str = "HEAD") -> str:
    """The full hash of ``rev`` in the repository at ``root``."""
    sha = _git(root, "rev-parse", "--verify", "--quiet", rev + "^{commit}")
    if not sha:
        raise RepositoryNotFound(f"{rev!r} is not a commit of the git repository at {root}")
    return sha


def worktree_commit(root: Path) -> str:
    """A name for the checkout's state: HEAD's hash, plus ``+`` and a digest when it has changes.

    A review of a dirty working tree then never writes its edits into the
    index of the clean commit, yet still starts from that commit's index.
    """
    sha = resolve_commit(root)
    status = _git(root, "status", "--porcelain", "--untracked-files=all")
    if not status:
        return sha
    diff = _git(root, "diff", "HEAD", "--binary") or ""
    digest = hashlib.sha256((status + "\0" + diff).encode("utf-8", "surrogateescape"))
    return f"{sha}+{digest.hexdigest()[:12]}"


def nearest_commit(root: Path, commit: str, candidates: list[str]) -> str | None:
    """Of ``candidates`` (hashes), the one fewest commits away from ``commit``.

    Distance counts the commits on either side of the merge base (``git
    rev-list --left-right --count a...b``); a candidate this clone does not have
    (a shallow CI checkout) is passed over.
    """
    best: tuple[int, str] | None = None
    commit = commit.split("+", 1)[0]
    for cand in candidates:
        counts = _git(root, "rev-list", "--left-right", "--count", f"{cand}...{commit}")
        if not counts:
            continue
        left, right = (int(x) for x in counts.split())
        if best is None or left + right < best[0]:
            best = (left + right, cand)
    return None if best is None else best[1]


def seed_from_nearest(
    store: PostgresStore, root: Path, commit: str, *, overlay: bool = False
) -> str | None:
    """Start an empty pinned index from the nearest indexed commit's; returns that commit.

    A copy (``overlay=False``) is a full index other commits can start from in
    turn; an overlay copies nothing and stores only what differs, which is what a
    one-shot job (a CI review) wants.

    Runs under the store's writer lock, so two CI jobs on the same commit seed
    it once; the second finds it full and copies nothing.
    """
    with store.writer():
        if not store.is_empty():
            return None
        base = store.identity[: -len(commit)]
        shas = {i[len(base) :]: i for i in store.identities(base)}
        shas = {sha: ident for sha, ident in shas.items() if sha and not set("@+#") & set(sha)}
        nearest = nearest_commit(root, commit, list(shas))
        if nearest is None:
            return None
        if overlay:
            store.link_base(shas[nearest])
            log.info("index of %s overlays %s", commit[:12], nearest[:12])
        else:
            files = store.copy_from(shas[nearest])
            log.info("index of %s starts from %s (%d files)", commit[:12], nearest[:12], files)
        return nearest
