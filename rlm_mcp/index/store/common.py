"""What the SQLite and PostgreSQL stores share: the writer's re-entrant hold, and the columns
both schemas name alike with the rows built from them.

The SQL of each store stays in its own package; this module holds only what is
the same in both, so a fix to one cannot miss the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rlm_mcp.index.model import FileRow

__all__ = [
    "DEF_COLUMNS",
    "ENTRY_COLUMNS",
    "FILE_COLUMNS",
    "TEXT_BATCH",
    "WriterHold",
    "file_rows",
]

TEXT_BATCH = 500
"""Paths (or names) one query looks up at a time."""
DEF_COLUMNS = "name, qualname, kind, path, start_line, end_line, signature, doc"
FILE_COLUMNS = "path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8"
"""The columns of a :class:`~rlm_mcp.index.model.FileRow`, in its field order."""
ENTRY_COLUMNS = "path, size, mtime_ns, language, lines, tokens, invalid_utf8"
"""The columns :func:`~rlm_mcp.index.model.file_entries` builds a file table from."""


def file_rows(rows: Iterable[Sequence[Any]]) -> dict[str, FileRow]:
    """A :class:`FileRow` per row of :data:`FILE_COLUMNS`, keyed by path in row order."""
    return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}


class WriterHold:
    """The bookkeeping of :meth:`~rlm_mcp.index.store.base.IndexStore.writer`.

    Exclusive across threads (``lock``, which the store's batches also take)
    and re-entrant in one thread: only the outermost hold takes the store's
    cross-process lock, and ``depth`` says whether one is held.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.depth = 0

    @contextmanager
    def hold(self, take: Callable[[], AbstractContextManager[object]]) -> Iterator[None]:
        """Hold the writer; the outermost hold enters ``take()`` (the store's own lock)."""
        with self.lock:
            if self.depth:
                self.depth += 1
                try:
                    yield
                finally:
                    self.depth -= 1
                return
            with take():
                self.depth = 1
                try:
                    yield
                finally:
                    self.depth = 0
