"""Gitignore semantics for the walker and for ``.rlmignore``.

Git's own rules are reproduced here so that a directory outside a work tree
(or a machine without the git binary) sees the same file set that ``git
ls-files --exclude-standard`` would give: the last matching pattern wins,
deeper ignore files override shallower ones, and nothing below an ignored
directory can be re-included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IGNORE_FILES",
    "IgnoreMatcher",
    "Pattern",
    "compile_pattern",
    "parse_ignore",
    "translate_glob",
]

log = logging.getLogger(__name__)

IGNORE_FILES = (".gitignore", ".rlmignore")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled line of an ignore file, relative to ``base`` (POSIX, "" = root)."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    source: str


def translate_glob(glob: str) -> str:
    """Translate one gitignore glob body (no leading/trailing slash) to a regex."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = i + 2
                if before_ok and (after == n or glob[after] == "/"):
                    if after == n:
                        out.append(".*")
                        i = after
                    else:
                        out.append("(?:.*/)?")
                        i = after + 1
                    continue
            out.append("[^/]*")
            while i < n and glob[i] == "*":
                i += 1
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        elif c == "[":
            part, i = _bracket(glob, i)
            out.append(part)
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _bracket(glob: str, i: int) -> tuple[str, int]:
    """The regex for the character class opening at ``glob[i]``, and the index of its ``]``
    (an unclosed ``[`` is a literal)."""
    n = len(glob)
    j = i + 1
    if j < n and glob[j] in "!^":
        j += 1
    if j < n and glob[j] == "]":
        j += 1
    while j < n and glob[j] != "]":
        j += 2 if glob[j] == "\\" else 1
    if j >= n:
        return re.escape("["), i
    body = glob[i + 1 : j]
    neg = body[:1] in ("!", "^")
    if neg:
        body = body[1:]
    for ch in "[&~|":
        body = body.replace(ch, "\\" + ch)
    body = body.replace("--", "-\\-")
    return "[" + ("^/" if neg else "") + body + "]", j


def compile_pattern(line: str, base: str = "") -> Pattern | None:
    """Compile one ignore-file line; ``None`` for blanks and comments."""
    raw = line.rstrip("\n").rstrip("\r")
    if not raw or raw.startswith("#"):
        return None
    # Trailing spaces are ignored unless escaped with a backslash.
    stripped = raw.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(raw):
        stripped += " "
    raw = stripped
    if not raw:
        return None
    negate = False
    if raw.startswith("!"):
        negate, raw = True, raw[1:]
    elif raw.startswith("\\!") or raw.startswith("\\#"):
        raw = raw[1:]
    dir_only = raw.endswith("/") and not raw.endswith("\\/")
    if dir_only:
        raw = raw.rstrip("/")
    if not raw:
        return None
    anchored = "/" in raw
    raw = raw.lstrip("/")
    body = translate_glob(raw)
    prefix = re.escape(base) + "/" if base else ""
    regex = prefix + body if anchored else prefix + "(?:.*/)?" + body
    try:
        compiled = re.compile(regex + r"\Z", re.DOTALL)
    except re.error:
        log.warning("ignoring unparsable ignore pattern %r", line)
        return None
    return Pattern(compiled, negate, dir_only, line)


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive patterns of one polarity, as one regex for files and one for directories."""

    negate: bool
    files: re.Pattern[str] | None
    dirs: re.Pattern[str] | None

    @staticmethod
    def of(group: list[Pattern]) -> _Run:
        def union(items: list[Pattern]) -> re.Pattern[str] | None:
            if not items:
                return None
            return re.compile("|".join(f"(?:{p.regex.pattern})" for p in items), re.DOTALL)

        return _Run(group[0].negate, union([p for p in group if not p.dir_only]), union(group))


def parse_ignore(text: str, base: str = "") -> list[Pattern]:
    """Compile every pattern in an ignore file whose directory is ``base``."""
    out: list[Pattern] = []
    for line in text.splitlines():
        pat = compile_pattern(line, base)
        if pat is not None:
            out.append(pat)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class IgnoreMatcher:
    """Decides whether a root-relative path is ignored.

    Ignore files are read lazily per directory and cached for the matcher's
    life (the indexer builds a new matcher after an ignore file changes). ``names`` picks which
    per-directory files count (``.gitignore`` and ``.rlmignore`` outside git,
    only ``.rlmignore`` when git already applied its own rules).
    """

    def __init__(
        self,
        root: Path,
        names: Iterable[str] = IGNORE_FILES,
        *,
        use_info_exclude: bool = True,
        extra: Iterable[str] = (),
    ) -> None:
        self.root = root
        self.names = tuple(names)
        self._dirs: dict[str, list[Pattern]] = {}
        self._run_cache: dict[str, list[_Run]] = {}
        self._global: list[Pattern] = parse_ignore("\n".join(extra))
        if use_info_exclude:
            text = _read(root / ".git" / "info" / "exclude")
            if text:
                self._global = parse_ignore(text) + self._global

    def patterns_for(self, directory: str) -> list[Pattern]:
        """Patterns declared in ``directory`` itself ("" = root), cached."""
        pats = self._dirs.get(directory)
        if pats is None:
            pats = []
            d = self.root / directory if directory else self.root
            for name in self.names:
                text = _read(d / name)
                if text:
                    pats.extend(parse_ignore(text, directory))
            self._dirs[directory] = pats
        return pats

    def _runs(self, key: str, pats: list[Pattern]) -> list[_Run]:
        """The level's patterns as runs of equal polarity, last run first, each one regex.

        The last matching pattern decides; within a run of patterns that all
        say "ignore" (or all say "keep"), *any* match gives the same answer, so
        each run is one alternation: one C-level pass instead of a Python call
        per pattern.
        """
        runs = self._run_cache.get(key)
        if runs is not None:
            return runs
        groups: list[list[Pattern]] = []
        for pat in pats:
            if groups and groups[-1][0].negate == pat.negate:
                groups[-1].append(pat)
            else:
                groups.append([pat])
        runs = [_Run.of(group) for group in reversed(groups)]
        self._run_cache[key] = runs
        return runs

    def _match(self, path: str, is_dir: bool) -> bool | None:
        parts = path.split("/")
        levels: list[tuple[str, list[Pattern]]] = [("\0global", self._global)]
        for k in range(len(parts)):
            directory = "/".join(parts[:k])
            levels.append((directory, self.patterns_for(directory)))
        for key, pats in reversed(levels):
            if not pats:
                continue
            for run in self._runs(key, pats):
                regex = run.dirs if is_dir else run.files
                if regex is not None and regex.match(path):
                    return not run.negate
        return None

    def is_ignored_entry(self, path: str, is_dir: bool) -> bool:
        """Whether this entry itself is ignored (parents are assumed not ignored)."""
        if path == ".git" or path.startswith(".git/") or path.endswith("/.git"):
            return True
        return bool(self._match(path, is_dir))

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` is ignored, itself or through an ignored parent."""
        parts = path.split("/")
        for k in range(1, len(parts)):
            if self.is_ignored_entry("/".join(parts[:k]), True):
                return True
        return self.is_ignored_entry(path, is_dir)
