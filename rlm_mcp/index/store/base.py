"""What the index needs from storage: the seam between indexing and a database.

:class:`IndexStore` is the whole contract; its value types live in :mod:`rlm_mcp.index.model`. The indexer (``repository.py``),
search (``search.py``) and the repository map (``repomap.py``) speak only
these typed operations; every SQL statement lives in an implementation
(:mod:`rlm_mcp.index.store.sqlite` for SQLite). A new backend implements this
protocol and passes ``tests/index/test_store_conformance.py``.

Writes go through a :class:`StoreBatch`: one atomic unit (a transaction),
so a reader never sees half a file and a crash never leaves one.

Every path a store is given or returns is spelled as
:mod:`rlm_mcp.index.discover.names` spells it (valid UTF-8, no lone
surrogates), so a ``TEXT`` column holds any file name and a path read back
is the key it was written under.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from rlm_mcp.index.model import (
    Definition,
    DefQuery,
    DefRow,
    FileEntry,
    FileGraph,
    FileRow,
    Reference,
    RefRow,
    SkippedFile,
    SkipRow,
    TextHit,
)
from rlm_mcp.index.search.ranking import DocRow

__all__ = [
    "IndexStore",
    "StoreBatch",
]


class StoreBatch(Protocol):
    """Writes inside one transaction; see :meth:`IndexStore.batch`."""

    def delete_paths(self, paths: Sequence[str]) -> None:
        """Forget everything stored for ``paths``."""

    def put_file(
        self,
        row: FileRow,
        text: str,
        defs: Sequence[DefRow],
        refs: Sequence[RefRow],
        docs: Sequence[DocRow] | None = None,
    ) -> None:
        """Store one parsed file, replacing whatever was stored for its path.

        ``docs`` are its ranked-search rows (:func:`~rlm_mcp.index.search.ranking.doc_rows`),
        computed by the parser processes; ``None`` computes them here. When the
        stored text already has ``row.hash`` the store may keep it (and its text
        index entries) rather than write it again.
        """

    def put_text(self, row: FileRow, text: str) -> None:
        """Store a file's row and text with its symbols still to extract.

        The first pass of a cold load: the file list, path search and grep
        work at once, and :meth:`IndexStore.unparsed_paths` lists the file
        until :meth:`put_file` stores it whole. If the stored row already has
        ``row.hash``, only the row is replaced (its symbols stay). A store may
        keep a changed file's old symbols until ``put_file`` replaces them
        (stale meanwhile; the file is listed as unparsed, so results say partial).
        """

    def put_skipped(self, skip: SkippedFile, size: int, mtime_ns: int) -> None:
        """Record a skipped file, replacing whatever was stored for its path."""

    def touch(self, path: str, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""

    def set_meta(self, key: str, value: str) -> None:
        """Set one key of the store's metadata."""


class IndexStore(Protocol):
    """The persistent index of one repository; every method is thread-safe."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages (a file path or a URL without secrets)."""

    @property
    def own_path(self) -> Path | None:
        """A file the store keeps inside the repository's tree, if any (never indexed)."""

    def close(self) -> None: ...

    def reader_spec(self) -> tuple[str, str]:
        """``(module, argument)``: another process opens ``module.open_text_reader(argument)``.

        The reader has ``read(paths) -> dict[path, text]`` and ``close()``; grep
        runs in a helper process and reads texts through it.
        """

    def check(self) -> str | None:
        """``None`` when the stored data is intact, else what is wrong (may be slow)."""

    def reset(self) -> None:
        """Drop everything stored (used to rebuild a corrupt index)."""

    # -- writes ------------------------------------------------------------------

    def writer(self) -> AbstractContextManager[None]:
        """Held for a whole load or watcher batch: one writer per repository at a time.

        Other writers, in this process or another, wait; readers never do.
        """

    def batch(self) -> AbstractContextManager[StoreBatch]:
        """One atomic write; other writers (threads or processes) wait for it."""

    def bulk_load(self) -> AbstractContextManager[None]:
        """Around many batches (a cold load, or the symbols pass after one): the store
        may defer its search indexes, and build them when the block ends normally.

        An empty store may also defer its text index, built afterwards by
        :meth:`index_texts`. When the block raises, deferred indexes may be left to
        the next open.
        """

    def index_texts(self, max_files: int) -> bool:
        """Add up to ``max_files`` stored texts to the text index; ``True`` once it is complete.

        One bounded transaction per call, so a caller can interleave it with
        other writes and report progress; safe to call when nothing is left.
        """

    # -- reads -------------------------------------------------------------------

    def meta(self, key: str) -> str | None: ...

    def file_rows(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        """The row of every indexed file, or of those of ``paths`` that are indexed."""

    def file_entries(self, paths: Sequence[str] | None = None) -> dict[str, FileEntry]:
        """:meth:`file_rows` as the file table holds them (no hash), in path order.

        A warm load of a monorepo reads all 170,000: build them with
        :func:`~rlm_mcp.index.model.file_entries`, not one ``FileRow`` at a time.
        """

    def skipped_rows(self) -> dict[str, SkipRow]: ...

    def text(self, path: str) -> str | None: ...

    def symbol_count(self) -> int: ...

    def unparsed_paths(self) -> list[str]:
        """Files stored by :meth:`StoreBatch.put_text` and not since by ``put_file``, sorted."""

    def text_index_progress(self) -> tuple[int, int]:
        """``(files in the text index, files stored)``; equal when it is complete."""

    def grep_candidates(self, alternatives: Sequence[Sequence[str]]) -> set[str] | None:
        """A superset of the files whose text contains every literal of some alternative.

        Literals (see :func:`~rlm_mcp.index.search.literals.literal_query`) are ASCII,
        at least three characters, and match case-insensitively. Files not yet
        in the text index are always candidates. ``None`` when the store cannot
        narrow the search at all (no text index yet): scan every file.
        """

    def find_defs(self, query: DefQuery) -> list[Definition]: ...

    def refs(self, name: str, limit: int) -> list[Reference]:
        """Uses of ``name``, in (path, line) order."""

    def edges(self, max_defining_files: int = 8) -> list[tuple[str, str, int]]:
        """(referencing file, defining file, uses) for each cross-file name use.

        Names defined in more than ``max_defining_files`` files say little
        about which file a use points at and are left out.
        """

    def ref_counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """How often each name (of ``names``, or every name) is used; unused names are absent."""

    def text_search(
        self, terms: Sequence[str], limit: int, path_regex: str | None = None
    ) -> list[TextHit]:
        """Definitions and files ranked by BM25 for any of ``terms`` (lower-case words).

        ``path_regex`` (matched at the path's start) narrows before the limit applies.
        """

    def file_graph(self, max_defining_files: int = 8, max_out: int = 64) -> FileGraph:
        """:meth:`edges` aggregated in the store, as integer ids in flat arrays.

        Each referencing file keeps its ``max_out`` heaviest edges (ties: the
        defining file first in path order), so what the caller holds is bounded
        by the number of files, never by the number of references.
        """
