"""The file table a repository shares with its searcher.

The indexer replaces the two mappings wholesale on every applied change and
never mutates them afterwards, so a reader that takes a reference holds a
consistent snapshot without copying 100,000 entries.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from rlm_mcp.index.discover.names import escape, is_raw, needs_escape
from rlm_mcp.index.model import FileEntry, SkippedFile

__all__ = ["FileTable"]

_LATIN1 = re.compile("[\x80-\xff]")


def _as_byte(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


_EMPTY_ENTRIES: Mapping[str, FileEntry] = MappingProxyType({})
_EMPTY_SKIPS: Mapping[str, SkippedFile] = MappingProxyType({})


class FileTable:
    """Indexed and skipped files of one root, with a version bumped on each change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.entries: Mapping[str, FileEntry] = _EMPTY_ENTRIES
        self.skips: Mapping[str, SkippedFile] = _EMPTY_SKIPS
        self.version = 0
        self.updated_at = time.time()

    def replace(self, entries: dict[str, FileEntry], skips: dict[str, SkippedFile]) -> int:
        """Swap in new mappings and bump the version; returns it."""
        with self.changed:
            self.entries = MappingProxyType(entries)
            self.skips = MappingProxyType(skips)
            self.version += 1
            self.updated_at = time.time()
            self.changed.notify_all()
            return self.version

    def wait_for_version(self, version: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.version < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def norm(self, path: str) -> str:
        """A path as the index spells it: POSIX, relative to the root, no ``./``, escaped.

        Either spelling of a name is accepted (:mod:`.discover.names`): the
        escaped form the index shows (``caf\\xe9.py``) or the OS name (a
        surrogate or a control character in it says which). A name that reads
        as both (a real backslash before ``x`` and two hex digits) is the
        indexed path it names, the shown form first. Surrounding whitespace is
        dropped unless the name with it is indexed. The shown form pasted into a
        Python string literal (``"caf\\xe9.py"`` reads as ``café.py``) finds the
        file too when no file has the name it reads as.
        """
        raw = str(path)
        if os.sep != "/":
            raw = raw.replace(os.sep, "/")
        tries = [self._relative(raw), self._relative(raw.strip())]
        spelled = [escape(t) if is_raw(t) else t for t in tries]
        alternatives = [
            *spelled,
            *(escape(t) for t in spelled if needs_escape(t)),
            *(_LATIN1.sub(_as_byte, t) for t in spelled if _LATIN1.search(t)),
        ]
        entries, skips = self.entries, self.skips
        for t in dict.fromkeys(alternatives):
            if t in entries or t in skips:
                return t
        return spelled[1]

    def _relative(self, p: str) -> str:
        for root in dict.fromkeys((str(self.root), escape(str(self.root)))):
            if p.startswith(root + "/"):
                p = p[len(root) + 1 :]
                break
        while p.startswith("./"):
            p = p[2:]
        return p.lstrip("/")
