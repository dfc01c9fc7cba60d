"""What belongs to one repository: the candidate files under its root, by its ignore rules.

A load lists them all (:meth:`Scope.listed`); a watcher batch asks what a few
changed and deleted paths stand for now (:meth:`Scope.changed`): a new
directory's files, a path the ignore rules now leave out, a file gone.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path

from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.discover.ignore import IgnoreMatcher
from rlm_mcp.index.discover.names import escape, unescape
from rlm_mcp.index.discover.walker import Candidate, GitListing, discover, git_list, stat_candidate
from rlm_mcp.index.model import SkippedFile

__all__ = ["Scope"]


class Scope:
    """The files of ``root`` that the index should consider; ``single`` narrows it to one.

    ``exclude`` is a path under which nothing is a candidate (a store kept
    inside the root). ``git`` says whether the last listing was git's.
    ``single`` is an OS name; what :meth:`listed` and :meth:`changed` return is
    spelled as the index spells paths (:mod:`.names`).
    """

    def __init__(
        self, root: Path, *, single: str | None, follow_symlinks: bool, exclude: Path | None
    ) -> None:
        self.root = root
        self.single = single
        self.follow_symlinks = follow_symlinks
        self.exclude = exclude
        self.git = False
        self._matcher: IgnoreMatcher | None = None

    def listed(
        self, listing: GitListing | None = None
    ) -> tuple[list[Candidate], list[SkippedFile]]:
        """Every candidate file and every path passed over; ``listing`` is git's, under way."""
        follow = self.follow_symlinks
        if self.single is not None:
            res = stat_candidate(str(self.root), self.single, follow_symlinks=follow)
            if isinstance(res, Candidate):
                return [res], []
            return [], [res] if res is not None else []
        found = discover(self.root, follow_symlinks=follow, listing=listing)
        self.git = found.git
        self._matcher = None
        own = self.exclude
        # Every candidate's path starts with the root's: only a store inside it can match.
        if own is None or not str(own).startswith(os.path.join(str(self.root), "")):
            return found.candidates, found.skipped
        prefix = str(own)
        return [c for c in found.candidates if not c.abspath.startswith(prefix)], found.skipped

    def changed(
        self,
        changed: set[str],
        deleted: set[str],
        known: Collection[str],
        known_skips: Collection[str],
    ) -> tuple[list[Candidate], list[SkippedFile], set[str]]:
        """What ``changed`` and ``deleted`` paths stand for now: the candidates, the skips,
        and the paths that are gone (what was below a deleted directory among ``known``
        and ``known_skips`` included, and what the ignore rules now leave out).

        ``changed`` and ``deleted`` are OS names (as a watcher sees them); ``known``
        and ``known_skips`` and what comes back are index paths."""
        root, follow = self.root, self.follow_symlinks
        changed = {escape(p) for p in changed if not _in_git_dir(p)}
        deleted = {escape(p) for p in deleted if not _in_git_dir(p)}
        files: set[str] = set()
        gone: set[str] = set(deleted)
        for p in deleted:
            prefix = p + "/"
            gone.update(k for k in known if k.startswith(prefix))
            gone.update(k for k in known_skips if k.startswith(prefix))
        unlisted: dict[str, SkippedFile] = {}
        for p in changed:
            full = root / unescape(p)
            if full.is_dir() and not full.is_symlink():
                try:
                    sub = discover(full, follow_symlinks=follow, use_git=False)
                except RepositoryNotFound as exc:
                    unlisted[p] = SkippedFile(p, "unreadable", str(exc))
                    continue
                files.update(f"{p}/{c.path}" for c in sub.candidates)
                for sk in sub.skipped:
                    # Symlinks are judged again against the whole root, below.
                    rel = f"{p}/{sk.path}"
                    if sk.reason == "unreadable":
                        unlisted[rel] = SkippedFile(rel, sk.reason, sk.detail)
                    files.add(rel)
            else:
                files.add(p)
        allowed = self._included(files | set(unlisted))
        candidates: list[Candidate] = []
        skips: list[SkippedFile] = []
        for p in sorted(files | set(unlisted)):
            if p not in allowed:
                gone.add(p)
                continue
            if p in unlisted:
                skips.append(unlisted[p])
                continue
            res = stat_candidate(str(root), unescape(p), follow_symlinks=follow, check_parents=True)
            if isinstance(res, Candidate):
                candidates.append(res)
            elif res is None:
                gone.add(p)
            else:
                skips.append(res)
        return candidates, skips, gone

    def _included(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` the ignore rules let in (existence not checked)."""
        paths = list(paths)
        if self.single is not None:
            return {p for p in paths if p == escape(self.single)}
        os_names = {p: unescape(p) for p in paths}
        if self.git:
            specs = list(os_names.values()) if len(paths) <= 200 else []
            listed = git_list(self.root, specs)
            if listed is not None:
                allowed = set(listed)
                rlm = IgnoreMatcher(self.root, names=(".rlmignore",), use_info_exclude=False)
                return {p for p, o in os_names.items() if o in allowed and not rlm.is_ignored(o)}
        if self._matcher is None:
            self._matcher = IgnoreMatcher(self.root)
        m = self._matcher
        return {p for p, o in os_names.items() if not m.is_ignored(o)}


def _in_git_dir(path: str) -> bool:
    return path == ".git" or path.startswith(".git/") or "/.git/" in path
