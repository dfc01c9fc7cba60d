"""What git says has changed, from the few files git itself writes last.

A branch switch, rebase, revert, reset or ``git stash`` rewrites thousands of files,
and the file events for them arrive in bursts, late, or (when the kernel's queue
overflows) not at all. Git marks each of these operations in its own directory:
``HEAD`` (which branch, or which commit when detached), the ref it names (a commit
moved under the same branch: a rebase, a reset, a revert, a pull) and ``refs/stash``
(``git stash`` and ``stash pop``), written while ``index.lock`` is held. A
:class:`GitMarks` snapshot of those few files, compared with the one taken when the
index was last brought up to date, tells the watcher that a change set is pending,
synchronously, before a single file event has been read; ``index.lock`` tells it an
operation is still running. The index file's own stat is not a mark: ``git status``
(which editors run every few seconds) rewrites it without changing a file.

A worktree (``git worktree add``) has a ``.git`` *file* naming its own git
directory (``HEAD``, ``index``), with refs in the shared common directory; its
marks are its own, so a switch in one worktree is no change set in another.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["GitDirs", "GitMarks", "GitTracker", "git_dirs", "marks"]

log = logging.getLogger(__name__)

_MAX_READ = 4096
LOCK_GRACE = 120.0
"""Seconds a held ``index.lock`` keeps batches back; older, it is taken as left by a git that
crashed (git itself refuses to run until it is removed), logged, and no longer waited on."""


@dataclass(frozen=True, slots=True)
class GitDirs:
    """A work tree's git directory (``HEAD``, ``index``) and common directory (refs)."""

    git_dir: Path
    common_dir: Path


@dataclass(frozen=True, slots=True)
class GitMarks:
    """What git last wrote: ``HEAD``, the commit it resolves to, and the newest stash.

    Two snapshots differ when a git operation moved the work tree's recorded state.
    ``busy`` (``index.lock`` exists) is left out of :meth:`same_state`: it says an
    operation is running, not what it changed.
    """

    head: str
    commit: str | None
    stash: str | None
    busy: bool = False

    def same_state(self, other: GitMarks | None) -> bool:
        return other is not None and (self.head, self.commit, self.stash) == (
            other.head,
            other.commit,
            other.stash,
        )


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_READ).decode("utf-8", "surrogateescape").strip()
    except OSError:
        return None


def git_dirs(root: Path) -> GitDirs | None:
    """The git directories of the work tree at ``root``, or ``None`` when it has none.

    Only ``root`` itself is looked at: a tree loaded from a subdirectory of a checkout has
    no marks here, and its file events alone keep it fresh.
    """
    dot = root / ".git"
    if dot.is_dir():
        git_dir = dot
    else:
        text = _read(dot) if dot.is_file() else None
        if not text or not text.startswith("gitdir:"):
            return None
        git_dir = Path(text[len("gitdir:") :].strip())
        if not git_dir.is_absolute():
            git_dir = (root / git_dir).resolve()
    if not (git_dir / "HEAD").is_file():
        return None
    common = _read(git_dir / "commondir")
    common_dir = git_dir
    if common:
        common_dir = Path(common) if Path(common).is_absolute() else (git_dir / common).resolve()
    return GitDirs(git_dir, common_dir)


def _packed(common_dir: Path, ref: str) -> str | None:
    try:
        with open(common_dir / "packed-refs", "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "surrogateescape").strip()
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    except OSError:
        return None
    return None


def _resolve(dirs: GitDirs, head: str) -> str | None:
    """The commit ``HEAD`` names: itself when detached, else its ref's (loose or packed)."""
    if not head.startswith("ref:"):
        return head or None
    ref = head[4:].strip()
    for base in (dirs.git_dir, dirs.common_dir):  # per-worktree refs first, then shared
        value = _read(base / ref)
        if value:
            return value
    return _packed(dirs.common_dir, ref)


def marks(dirs: GitDirs) -> GitMarks | None:
    """A snapshot of ``dirs``' marks; ``None`` when ``HEAD`` cannot be read (mid-rename)."""
    head = _read(dirs.git_dir / "HEAD")
    if head is None:
        return None
    busy = os.path.exists(dirs.git_dir / "index.lock")
    return GitMarks(head, _resolve(dirs, head), _resolve(dirs, "ref: refs/stash"), busy)


class GitTracker:
    """The marks of one work tree against those its index was last brought up to date with.

    :meth:`step` runs on the watcher's applier thread; :meth:`pending` on any thread.
    """

    def __init__(self, dirs: GitDirs) -> None:
        self.dirs = dirs
        self.seen: GitMarks | None = None
        self.changes = 0
        self._busy_since: float | None = None
        self._stale = False
        self._moved_to: GitMarks | None = None

    @classmethod
    def at(cls, root: Path) -> GitTracker | None:
        dirs = git_dirs(root)
        return cls(dirs) if dirs is not None else None

    def start(self) -> None:
        """Take the marks as they are now as the index's."""
        self.seen = marks(self.dirs)

    def pending(self) -> int:
        """1 while an operation runs, or git has moved and :meth:`step` has not taken it up."""
        now = marks(self.dirs)
        if now is None:
            return 1  # HEAD is being rewritten
        return int((now.busy and not self._stale) or not now.same_state(self.seen))

    def step(self) -> Literal["hold", "moved"] | None:
        """``"hold"`` while an operation runs (apply nothing yet); ``"moved"`` once, when
        the marks have moved (the caller requests its rescan *before* calling
        :meth:`taken`, so :meth:`pending` never reads zero in between); else ``None``."""
        now_marks = marks(self.dirs)
        if now_marks is None:
            return "hold"
        if not now_marks.busy:
            self._busy_since, self._stale = None, False
        elif self._busy_since is None:
            self._busy_since = time.monotonic()
        elif not self._stale and time.monotonic() - self._busy_since > LOCK_GRACE:
            log.warning(
                "%s has been held for %.0fs (a git that crashed?); applying changes anyway",
                self.dirs.git_dir / "index.lock",
                LOCK_GRACE,
            )
            self._stale = True
        if now_marks.busy and not self._stale:
            return "hold"
        if now_marks.same_state(self.seen):
            return None
        self._moved_to = now_marks
        return "moved"

    def taken(self) -> None:
        """The move :meth:`step` reported is now the caller's to apply."""
        self.seen = self._moved_to
        self.changes += 1
