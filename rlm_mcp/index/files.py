"""The file table a repository shares with its searcher.

The indexer replaces the two mappings wholesale on every applied change and
never mutates them afterwards, so a reader that takes a reference holds a
consistent snapshot without copying 100,000 entries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from rlm_mcp.index.model import FileEntry, SkippedFile

__all__ = ["FileTable"]

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
        """A path as the index spells it: POSIX, relative to the root, no ``./``."""
        p = str(path).replace("\\", "/").strip()
        root = str(self.root).replace("\\", "/")
        if p.startswith(root + "/"):
            p = p[len(root) + 1 :]
        while p.startswith("./"):
            p = p[2:]
        return p.lstrip("/")
