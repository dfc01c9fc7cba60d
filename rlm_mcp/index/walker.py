"""File discovery and classification.

Discovery lists candidate files (``git ls-files`` inside a work tree, an
``os.scandir`` walk with :class:`IgnoreMatcher` elsewhere) and stats them.
Classification reads one file and decides whether it is indexed or skipped,
and why. Every skip is recorded as a :class:`SkippedFile`; nothing is dropped
silently, so the model can be told what it cannot see.

Generated-file policy: ``*.min.js``, ``*.min.css``, ``*.map`` and well-known
lock files (``package-lock.json``, ``yarn.lock``, ``pnpm-lock.yaml``,
``Cargo.lock``, ``poetry.lock``, ``uv.lock``, ``Gemfile.lock``,
``composer.lock``, ``Pipfile.lock``, ``go.sum``) are skipped as ``generated``:
they are large, machine-written and rarely answer a question. So is a file
whose first KiB contains ``@generated``, or a comment line saying "generated
by" or "do not edit". A text file is ``minified`` when its average line is
longer than 500 characters or any line exceeds 10,000.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlm_mcp.index.ignore import IgnoreMatcher
from rlm_mcp.index.model import SkippedFile

__all__ = [
    "Candidate",
    "Classified",
    "Discovery",
    "Parsed",
    "classify",
    "content_hash",
    "discover",
    "git_list",
    "process",
    "process_batch",
    "stat_candidate",
]

log = logging.getLogger(__name__)

BINARY_SNIFF = 8192
GENERATED_SNIFF = 1024
MAX_AVG_LINE = 500
MAX_LINE = 10_000
GENERATED_SUFFIXES = (".min.js", ".min.css", ".map")
LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "Cargo.lock",
        "poetry.lock",
        "uv.lock",
        "Gemfile.lock",
        "composer.lock",
        "Pipfile.lock",
        "go.sum",
    }
)
_COMMENT_STARTS = ("#", "//", "/*", "*", "<!--", "--", ";", '"""', "'''", "%")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file (possibly reached through an in-root symlink), stat'ed."""

    path: str
    abspath: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Discovery:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    git: bool = False


@dataclass(slots=True)
class Classified:
    """The outcome of reading one file: ``text`` set when indexed, else ``skip``."""

    text: str | None = None
    data: bytes = b""
    invalid_utf8: bool = False
    skip: SkippedFile | None = None


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def stat_candidate(
    root_real: str, rel: str, *, follow_symlinks: bool = True
) -> Candidate | SkippedFile | None:
    """Stat one root-relative path; ``None`` when it does not exist (any more)."""
    abspath = os.path.join(root_real, rel)
    try:
        st = os.lstat(abspath)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return SkippedFile(rel, "unreadable", exc.strerror or str(exc))
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            return SkippedFile(rel, "not_regular", "symlink (follow_symlinks is off)")
        try:
            st = os.stat(abspath)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return SkippedFile(rel, "symlink_loop", "symlink resolves to itself")
            return SkippedFile(rel, "unreadable", f"dangling symlink: {exc.strerror}")
        real = os.path.realpath(abspath)
        if not _inside(real, root_real):
            return SkippedFile(rel, "symlink_outside_root", real)
        if stat.S_ISDIR(st.st_mode):
            return SkippedFile(rel, "not_regular", "symlink to a directory")
    if stat.S_ISDIR(st.st_mode):
        return SkippedFile(rel, "not_regular", "directory (submodule?)")
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(rel, "not_regular", "not a regular file")
    return Candidate(rel, abspath, st.st_size, st.st_mtime_ns)


_X = ("--exclude-standard",)


def git_list(root: Path, pathspecs: Sequence[str] = ()) -> list[str] | None:
    """Tracked plus untracked-not-ignored files, or ``None`` outside a work tree.

    ``pathspecs`` (root-relative, taken literally) limits the listing.
    """
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run(
            [git, "-c", "core.quotepath=off", "ls-files", "-z", "--cached", "--others", *_X]
            + (["--", *(f":(literal){p}" for p in pathspecs)] if pathspecs else []),
            cwd=root,
            capture_output=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("git ls-files failed in %s: %s", root, exc)
        return None
    if proc.returncode != 0:
        return None
    seen: set[str] = set()
    out: list[str] = []
    for raw in proc.stdout.split(b"\0"):
        if raw:
            rel = os.fsdecode(raw)
            if rel not in seen:
                seen.add(rel)
                out.append(rel)
    return out


def _walk(root_real: str, matcher: IgnoreMatcher, follow: bool, found: Discovery) -> None:
    """Iterative scandir walk that prunes ignored directories and in-root dir symlinks."""
    visited: set[tuple[int, int]] = set()
    st = os.stat(root_real)
    visited.add((st.st_dev, st.st_ino))
    stack: list[str] = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root_real, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            found.skipped.append(SkippedFile(rel_dir or ".", "unreadable", str(exc.strerror)))
            continue
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_link and follow:
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    is_dir = False
            if matcher.is_ignored_entry(rel, is_dir):
                continue
            if is_dir:
                if is_link:
                    real = os.path.realpath(entry.path)
                    if not _inside(real, root_real):
                        found.skipped.append(SkippedFile(rel, "symlink_outside_root", real))
                        continue
                    try:
                        dst = os.stat(entry.path)
                    except OSError:
                        continue
                    key = (dst.st_dev, dst.st_ino)
                    if key in visited:
                        found.skipped.append(
                            SkippedFile(rel, "symlink_loop", f"directory already indexed: {real}")
                        )
                        continue
                    visited.add(key)
                subdirs.append(rel)
                continue
            res = stat_candidate(root_real, rel, follow_symlinks=follow)
            if isinstance(res, Candidate):
                found.candidates.append(res)
            elif res is not None:
                found.skipped.append(res)
        stack.extend(reversed(subdirs))


def _has_entries(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def discover(root: Path, *, follow_symlinks: bool = True, use_git: bool = True) -> Discovery:
    """List the files of ``root`` (a resolved directory) that the index should consider."""
    root_real = str(root)
    found = Discovery()
    listed = git_list(root) if use_git else None
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
        for rel in sorted(listed):
            if matcher.is_ignored(rel):
                continue
            res = stat_candidate(root_real, rel, follow_symlinks=follow_symlinks)
            if isinstance(res, Candidate):
                found.candidates.append(res)
            elif res is not None:
                found.skipped.append(res)
        return found
    _walk(root_real, IgnoreMatcher(root), follow_symlinks, found)
    return found


def _generated_reason(rel: str, head: bytes) -> str | None:
    name = rel.rsplit("/", 1)[-1]
    if name in LOCK_FILES:
        return "lock file"
    if name.endswith(GENERATED_SUFFIXES):
        return "minified bundle or source map by name"
    text = head[:GENERATED_SNIFF].decode("utf-8", "replace")
    if "@generated" in text:
        return "@generated marker"
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(_COMMENT_STARTS):
            low = s.lower()
            if "generated by" in low or "do not edit" in low:
                return f"header says: {s[:80]}"
    return None


def classify(
    rel: str, abspath: str, size: int, max_file_bytes: int, *, explicit: bool = False
) -> Classified:
    """Read ``abspath`` and decide whether it is indexable text; never raises.

    ``explicit`` marks a file the user named directly (a single-file load): the
    generated/minified heuristics do not apply to it, only the binary and size checks.
    """
    if size > max_file_bytes:
        return Classified(skip=SkippedFile(rel, "too_large", f"{size} bytes > {max_file_bytes}"))
    try:
        with open(abspath, "rb") as fh:
            data = fh.read(max_file_bytes + 1)
    except FileNotFoundError:
        return Classified(skip=SkippedFile(rel, "vanished", "deleted while loading"))
    except OSError as exc:
        reason = "symlink_loop" if exc.errno == errno.ELOOP else "unreadable"
        return Classified(skip=SkippedFile(rel, reason, exc.strerror or str(exc)))
    if len(data) > max_file_bytes:
        return Classified(skip=SkippedFile(rel, "too_large", f"> {max_file_bytes} bytes"))
    if b"\0" in data[:BINARY_SNIFF]:
        return Classified(skip=SkippedFile(rel, "binary", "NUL byte in the first 8 KiB"))
    gen = None if explicit else _generated_reason(rel, data)
    if gen is not None:
        return Classified(skip=SkippedFile(rel, "generated", gen))
    try:
        text = data.decode("utf-8")
        invalid = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        invalid = True
    n = len(text)
    if n > MAX_AVG_LINE and not explicit:
        lines = text.count("\n") + 1
        if n / lines > MAX_AVG_LINE:
            return Classified(skip=SkippedFile(rel, "minified", f"average line {n // lines} chars"))
        if n > MAX_LINE and max(map(len, text.split("\n"))) > MAX_LINE:
            return Classified(skip=SkippedFile(rel, "minified", f"a line over {MAX_LINE} chars"))
    return Classified(text=text, data=data, invalid_utf8=invalid)


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class Parsed:
    """A file ready for the store: metadata, text and small tag tuples (cheap to pickle)."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    language: str | None
    lines: int
    tokens: int
    invalid_utf8: bool
    text: str
    defs: list[tuple[str, str, str, str, int, int, str, str]]
    refs: list[tuple[str, str, int, str]]


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual figure for code with BPE tokenizers."""
    return (len(text) + 3) // 4


def count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def process(
    item: tuple[str, str, int, int], max_file_bytes: int, *, explicit: bool = False
) -> Parsed | SkippedFile:
    """Classify, decode and tag one file; runs in a pool worker or in-process."""
    from rlm_mcp.index.languages import has_tags, language_for_path
    from rlm_mcp.index.tags import extract_tags

    rel, abspath, size, mtime_ns = item
    got = classify(rel, abspath, size, max_file_bytes, explicit=explicit)
    if got.skip is not None:
        return got.skip
    text = got.text or ""
    language = language_for_path(rel)
    defs: list[tuple[str, str, str, str, int, int, str, str]] = []
    refs: list[tuple[str, str, int, str]] = []
    if language is not None and has_tags(language):
        tags = extract_tags(got.data, rel, language)
        defs = [
            (d.name, d.qualname, d.kind, rel, d.start_line, d.end_line, d.signature, d.doc)
            for d in tags.definitions
        ]
        refs = [(r.name, rel, r.line, r.kind) for r in tags.references]
    return Parsed(
        rel,
        len(got.data),
        mtime_ns,
        content_hash(got.data),
        language,
        count_lines(text),
        estimate_tokens(text),
        got.invalid_utf8,
        text,
        defs,
        refs,
    )


def process_batch(
    items: list[tuple[str, str, int, int]], max_file_bytes: int
) -> list[Parsed | SkippedFile]:
    return [process(item, max_file_bytes) for item in items]
