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

__all__ = ["IGNORE_FILES", "IgnoreMatcher", "Pattern", "compile_pattern", "parse_ignore"]

log = logging.getLogger(__name__)

IGNORE_FILES = (".gitignore", ".rlmignore")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled line of an ignore file, relative to ``base`` (POSIX, "" = root)."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    source: str


def _translate_glob(glob: str) -> str:
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
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 2 if glob[j] == "\\" else 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                neg = body[:1] in ("!", "^")
                if neg:
                    body = body[1:]
                for ch in "[&~|":
                    body = body.replace(ch, "\\" + ch)
                body = body.replace("--", "-\\-")
                out.append("[" + ("^/" if neg else "") + body + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


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
    body = _translate_glob(raw)
    prefix = re.escape(base) + "/" if base else ""
    regex = prefix + body if anchored else prefix + "(?:.*/)?" + body
    try:
        compiled = re.compile(regex + r"\Z", re.DOTALL)
    except re.error:
        log.warning("ignoring unparsable ignore pattern %r", line)
        return None
    return Pattern(compiled, negate, dir_only, line)


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

    Ignore files are read lazily per directory and cached; call
    :meth:`invalidate` after an ignore file changes. ``names`` picks which
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
        self._global: list[Pattern] = parse_ignore("\n".join(extra))
        if use_info_exclude:
            text = _read(root / ".git" / "info" / "exclude")
            if text:
                self._global = parse_ignore(text) + self._global

    def invalidate(self) -> None:
        self._dirs.clear()

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

    def _match(self, path: str, is_dir: bool) -> bool | None:
        parts = path.split("/")
        levels = [self._global]
        for k in range(len(parts)):
            levels.append(self.patterns_for("/".join(parts[:k])))
        for pats in reversed(levels):
            for pat in reversed(pats):
                if pat.dir_only and not is_dir:
                    continue
                if pat.regex.match(path):
                    return not pat.negate
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
