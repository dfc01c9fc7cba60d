"""File discovery: the candidate files of a root, stat'ed.

Discovery lists candidate files (``git ls-files`` inside a work tree, an
``os.scandir`` walk with :class:`IgnoreMatcher` elsewhere) and stats them.
Every path it passes over (a symlink, an unreadable directory, a
non-regular file) is recorded as a :class:`SkippedFile`; nothing is dropped
silently, so the model can be told what it cannot see. What a candidate's
content is (text, binary, generated, minified) is :mod:`.classify`'s call.

Names come in as the OS gives them and leave spelled as the index spells
them (:func:`.names.escape`): a candidate's ``path`` is escaped, its
``abspath`` is what ``open`` takes.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.discover.ignore import IgnoreMatcher
from rlm_mcp.index.discover.names import escape
from rlm_mcp.index.model import SkippedFile

__all__ = [
    "Candidate",
    "Discovery",
    "GitListing",
    "discover",
    "git_list",
    "stat_candidate",
    "stat_candidates",
]

log = logging.getLogger(__name__)


class Candidate(NamedTuple):
    """A regular file, stat'ed; never a symlink (see :func:`stat_candidate`).

    ``path`` is the index's spelling (:mod:`.names`), ``abspath`` the OS name.

    A named tuple, not a dataclass: discovery makes one per file, 170,000 on a
    monorepo, and a tuple costs a third less to build than a frozen dataclass.
    """

    path: str
    abspath: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Discovery:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    git: bool = False


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _symlink_skip(root_real: str, rel: str, abspath: str, follow: bool) -> SkippedFile:
    """Why the symlink at ``rel`` is not indexed itself, and what it stands for.

    Symlink policy (git's): a symlink is an alias, never indexed under its own
    path and never descended into. What it points to inside the root is indexed
    once, under its real path, by the same rules as any other file: the link is
    ``symlink_duplicate`` ("same as real/"). A directory link to one of its own
    ancestors is ``symlink_loop``, as is a chain that never resolves; a target
    outside the root is ``symlink_outside_root``. Git lists a symlink as one
    entry and the walker sees the same, so both discoveries agree.
    """
    rel = escape(rel)
    if not follow:
        return SkippedFile(rel, "not_regular", "symlink (follow_symlinks is off)")
    try:
        st = os.stat(abspath)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return SkippedFile(rel, "symlink_loop", "symlink resolves to itself")
        return SkippedFile(rel, "unreadable", f"dangling symlink: {exc.strerror}")
    real = os.path.realpath(abspath)
    if not _inside(real, root_real):
        return SkippedFile(rel, "symlink_outside_root", escape(real))
    target = escape(os.path.relpath(real, root_real).replace(os.sep, "/"))
    if not stat.S_ISDIR(st.st_mode):
        return SkippedFile(rel, "symlink_duplicate", f"same as {target}")
    shown = "./" if target == "." else f"{target}/"
    here = os.path.join(os.path.realpath(os.path.dirname(abspath)), os.path.basename(abspath))
    if _inside(here, real):
        return SkippedFile(rel, "symlink_loop", f"points to an enclosing directory: {shown}")
    return SkippedFile(rel, "symlink_duplicate", f"same as {shown}")


def stat_candidate(
    root_real: str, rel: str, *, follow_symlinks: bool = True, check_parents: bool = False
) -> Candidate | SkippedFile | None:
    """Stat one root-relative OS name; ``None`` when it does not exist (any more).

    A symlink is never a candidate: it comes back as a :class:`SkippedFile`
    saying what it aliases (``follow_symlinks`` off: ``not_regular``).
    ``check_parents`` also catches a path reached through a symlinked
    directory; discovery never produces one (neither git nor the walk
    descends into a symlink), so only paths from elsewhere need the check.
    """
    abspath = os.path.join(root_real, rel)
    try:
        st = os.lstat(abspath)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return SkippedFile(escape(rel), "unreadable", exc.strerror or str(exc))
    if stat.S_ISLNK(st.st_mode):
        return _symlink_skip(root_real, rel, abspath, follow_symlinks)
    if check_parents:
        parent = os.path.dirname(abspath)
        if parent != root_real and os.path.realpath(parent) != parent:
            return _symlink_skip(root_real, rel, abspath, follow_symlinks)
    if stat.S_ISDIR(st.st_mode):
        return SkippedFile(escape(rel), "not_regular", "directory (submodule?)")
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(escape(rel), "not_regular", "not a regular file")
    return Candidate(escape(rel), abspath, st.st_size, st.st_mtime_ns)


def stat_candidates(
    root_real: str, rels: Iterable[str], found: Discovery, *, follow_symlinks: bool = True
) -> None:
    """:func:`stat_candidate` for each of ``rels`` (in order), into ``found``.

    The same outcome as calling it per path, at a fraction of the cost on a
    huge tree: a regular file (nearly every path) costs one ``lstat`` and a
    string concatenation; anything else (a symlink, a directory, a path that
    vanished or cannot be read) is judged again by :func:`stat_candidate` itself.
    ``rels`` are relative (as git and the walk list them), never absolute.
    """
    prefix = root_real if root_real.endswith(os.sep) else root_real + os.sep
    lstat = os.lstat
    isreg = stat.S_ISREG
    candidates = found.candidates
    add = candidates.append
    for rel in rels:
        abspath = prefix + rel
        try:
            st = lstat(abspath)
        except OSError:
            st = None
        if st is not None and isreg(st.st_mode):
            add(Candidate(escape(rel), abspath, st.st_size, st.st_mtime_ns))
            continue
        res = stat_candidate(root_real, rel, follow_symlinks=follow_symlinks)
        if isinstance(res, Candidate):
            add(res)
        elif res is not None:
            found.skipped.append(res)


_X = ("--exclude-standard",)


GIT_TIMEOUT = 120.0


class GitListing:
    """``git ls-files`` of a work tree, started now; :meth:`result` waits for the names.

    Git reads its index and walks the tree for untracked files in a process of
    its own (a quarter of a second on a monorepo), so a warm load reads the store
    meanwhile. Git writes to an unlinked temporary file rather than a pipe, so it
    never waits for this process to drain it; where no temporary file can be
    made, git runs through a pipe when :meth:`result` is called.
    """

    def __init__(self, root: Path, pathspecs: Sequence[str] = ()) -> None:
        self._root = root
        self._cmd: list[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._deadline = 0.0
        git = shutil.which("git")
        if git is None:
            return
        self._cmd = [git, "-c", "core.quotepath=off", "ls-files", "-z", "--cached", "--others", *_X]
        if pathspecs:
            self._cmd += ["--", *(f":(literal){p}" for p in pathspecs)]
        try:
            self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        except OSError:
            return
        self._start(self._cmd, self._out)

    def _start(self, cmd: list[str], stdout: IO[bytes] | int) -> None:
        self._deadline = time.monotonic() + GIT_TIMEOUT
        try:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self._root,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("git ls-files failed in %s: %s", self._root, exc)
            self.close()

    def result(self) -> list[str] | None:
        """Tracked plus untracked-not-ignored files (OS names), or ``None`` outside a work tree
        (or when git is missing, fails, or runs past :data:`GIT_TIMEOUT`)."""
        if self._cmd is None:
            return None
        if self._out is None and self._proc is None:
            self._start(self._cmd, subprocess.PIPE)
        proc, out = self._proc, self._out
        if proc is None:
            return None
        try:
            timeout = max(0.0, self._deadline - time.monotonic())
            if out is None:
                data = proc.communicate(timeout=timeout)[0]
            else:
                proc.wait(timeout=timeout)
                out.seek(0)
                data = out.read()
        except (OSError, subprocess.SubprocessError) as exc:  # TimeoutExpired included
            log.info("git ls-files failed in %s: %s", self._root, exc)
            self.close()
            return None
        rc = proc.returncode
        self.close()
        if rc != 0:
            return None
        # One decode of the whole listing, as os.fsdecode would decode each name: NUL never
        # occurs inside a UTF-8 sequence, so the names and their escapes come out the same.
        names = data.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
        listed = dict.fromkeys(names.split("\0"))  # in order, each once (a conflict lists a path
        listed.pop("", None)  # once per stage); "" is what follows the last NUL
        return list(listed)

    def close(self) -> None:
        """Stop git if it still runs and drop its output; :meth:`result` is ``None`` after."""
        self._cmd = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        out, self._out = self._out, None
        if out is not None:
            out.close()


def git_list(root: Path, pathspecs: Sequence[str] = ()) -> list[str] | None:
    """Tracked plus untracked-not-ignored files, or ``None`` outside a work tree.

    ``pathspecs`` (root-relative, taken literally) limits the listing.
    """
    return GitListing(root, pathspecs).result()


def _unlistable(root_real: str, exc: OSError) -> RepositoryNotFound:
    return RepositoryNotFound(f"cannot list the directory {root_real}: {exc.strerror or exc}")


def _walk(root_real: str, matcher: IgnoreMatcher, follow: bool, found: Discovery) -> None:
    """Iterative scandir walk that prunes ignored directories.

    Like git, it never descends into a symlink and matches ignore patterns
    against it as a file (``dir/`` does not match a symlink to a directory);
    :func:`stat_candidate` records what each symlink aliases.
    """
    stack: list[str] = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root_real, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if not rel_dir:
                raise _unlistable(root_real, exc) from None
            found.skipped.append(SkippedFile(escape(rel_dir), "unreadable", str(exc.strerror)))
            continue
        subdirs: list[str] = []
        files: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if matcher.is_ignored_entry(rel, is_dir):
                continue
            (subdirs if is_dir else files).append(rel)
        stat_candidates(root_real, files, found, follow_symlinks=follow)
        stack.extend(reversed(subdirs))


def _has_entries(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def discover(
    root: Path,
    *,
    follow_symlinks: bool = True,
    use_git: bool = True,
    listing: GitListing | None = None,
) -> Discovery:
    """List the files of ``root`` (a resolved directory) that the index should consider.

    ``listing`` is git's listing of ``root``, already under way (``use_git`` is
    then implied).

    Raises:
        RepositoryNotFound: ``root`` cannot be listed (no permission, an I/O
            error). Indexing it as empty would silently drop every file; a
            subdirectory that cannot be listed is only recorded as ``unreadable``.
    """
    root_real = str(root)
    try:
        with os.scandir(root_real) as it:
            next(it, None)
    except OSError as exc:
        raise _unlistable(root_real, exc) from None
    found = Discovery()
    listed = listing.result() if listing is not None else git_list(root) if use_git else None
    if listed == [] and _has_entries(root_real):
        # The root sits inside a work tree that ignores it (a vendored or build
        # directory, a virtualenv): the user asked for it, so walk it instead.
        log.info(
            "git lists no files under %s (ignored by an enclosing repository); walking it", root
        )
        listed = None
    if listed is not None:
        found.git = True
        matcher = IgnoreMatcher(root, names=(".rlmignore",), use_info_exclude=False)
        # Only files below a directory holding an .rlmignore can be ignored by one: on
        # a 170,000-file tree without any, matching every path cost seconds per load.
        scopes = sorted(
            {
                rel.rpartition("/")[0]
                for rel in listed
                if rel.endswith(".rlmignore") and rel.rpartition("/")[2] == ".rlmignore"
            }
        )
        if os.path.isfile(os.path.join(root_real, ".rlmignore")):
            scopes = [""]
        prefixes = tuple(d + "/" for d in scopes if d)
        listed.sort()
        if scopes:
            listed = [
                rel
                for rel in listed
                if not (("" in scopes or rel.startswith(prefixes)) and matcher.is_ignored(rel))
            ]
        stat_candidates(root_real, listed, found, follow_symlinks=follow_symlinks)
        return found
    _walk(root_real, IgnoreMatcher(root), follow_symlinks, found)
    return found
