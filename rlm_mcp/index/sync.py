"""The writer side of a repository: list its files, compare them with what the store
holds, parse what changed and write it.

A load (the texts pass of a cold one included), a refresh and a watcher batch all
run :meth:`Syncer.refresh` or :meth:`Syncer.apply`. The files come from the
repository's :class:`~rlm_mcp.index.discover.scope.Scope`; those whose size and mtime
(or content hash) are unchanged are reused, only the rest are parsed
(:func:`~rlm_mcp.index.parse.worker.parse_items`: in-process for a handful of
files, in a process pool for more), and the results stream into the store batch
by batch so that memory stays bounded whatever the repository size. The shared
state of the passes (:class:`IndexState`) lives here too: the completion pass
(:mod:`rlm_mcp.index.completion`) works on it after the texts pass.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import LoadInterrupted
from rlm_mcp.index.discover.names import unescape
from rlm_mcp.index.discover.scope import Scope
from rlm_mcp.index.discover.walker import Candidate, GitListing
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.model import FileEntry, IndexProgress, LoadReport, SkippedFile, SkipRow
from rlm_mcp.index.parse.worker import Item, Parsed, content_hash, parse_items
from rlm_mcp.index.search.searcher import Searcher
from rlm_mcp.index.store.base import IndexStore, StoreBatch

__all__ = ["IndexState", "Progress", "Syncer", "WrittenPaths"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
BULK_THRESHOLD = 200
TEXTS_FIRST_FILES = 2_000
"""A change set this large (a branch switch) stores texts first, symbols in a second pass."""
REREAD_ALL = 5_000
"""A sync that wrote more rows than this reads the whole file table back, not just those rows."""
CONTENT_SKIPS = frozenset({"binary", "too_large", "generated", "minified"})


@dataclass(eq=False)
class IndexState:
    """One repository's index as its passes share it: where it lives and how far a load got.

    ``pending_symbols`` counts the files whose symbols are still to be extracted.
    Setting ``stop`` ends a load between batches and, later, the background pass.
    """

    root: Path
    settings: IndexSettings
    store: IndexStore
    table: FileTable
    searcher: Searcher
    stop: threading.Event = field(default_factory=threading.Event)
    report: LoadReport = field(init=False)
    progress: IndexProgress | None = None
    pending_symbols: int = 0

    def __post_init__(self) -> None:
        self.report = LoadReport(root=str(self.root))


class WrittenPaths:
    """The paths the writer stored while a completion pass runs (:meth:`tracking`): the
    pass read them before, so it must not overwrite them with its older parse."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._tracking = False

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        self._tracking = True
        try:
            yield
        finally:
            self.clear()
            self._tracking = False

    def add(self, *groups: Iterable[str]) -> None:
        if self._tracking:
            with self._lock:
                for paths in groups:
                    self._paths.update(paths)

    def clear(self) -> None:
        with self._lock:
            self._paths.clear()

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self._paths)


class Syncer:
    """Brings the store and the file table in line with the disk; one per repository."""

    def __init__(self, state: IndexState, *, single: str | None = None) -> None:
        self.state = state
        self.scope = Scope(
            state.root,
            single=single,
            follow_symlinks=state.settings.follow_symlinks,
            exclude=state.store.own_path,
        )
        self.written = WrittenPaths()

    # -- entry points --------------------------------------------------------

    def refresh(self, progress: Progress | None = None) -> LoadReport:
        """Full rescan: rediscover files, parse what changed, drop what is gone."""
        t0 = time.perf_counter()
        state = self.state
        if not state.root.exists():
            log.warning("repository root %s is missing; keeping the last index", state.root)
            return state.report
        # Git lists the files in a process of its own while this one reads the store.
        listing = GitListing(state.root) if self.scope.single is None else None
        try:
            with state.store.writer():
                with _gc_paused():
                    known = state.store.file_entries()
                    known_skips = state.store.skipped_rows()
                    candidates, skips = self.scope.listed(listing)
                parsed, reused, removed = self._sync_locked(
                    candidates, skips, None, progress, (known, known_skips)
                )
        finally:
            if listing is not None:
                listing.close()
        state.report = self.make_report(parsed, reused, removed, time.perf_counter() - t0)
        return state.report

    def apply(self, changed: set[str], deleted: set[str]) -> LoadReport:
        """Re-classify and re-parse only ``changed``; drop ``deleted`` (and what was below it)."""
        t0 = time.perf_counter()
        state = self.state
        table = state.table
        candidates, skips, gone = self.scope.changed(changed, deleted, table.entries, table.skips)
        parsed, reused, removed = self._sync(candidates, skips, gone, None)
        state.report = self.make_report(parsed, reused, removed, time.perf_counter() - t0)
        return state.report

    # -- the indexing pipeline ---------------------------------------------------

    def _sync(
        self,
        candidates: list[Candidate],
        walk_skips: list[SkippedFile],
        remove: set[str] | None,
        progress: Progress | None,
    ) -> tuple[int, int, int]:
        """Bring the store in line with ``candidates``; returns (parsed, reused, removed).

        ``remove=None`` means a full scan: every stored path not among the
        candidates is deleted. Otherwise only ``remove`` is deleted. The whole
        sync holds the store's writer lock, so a second process loading the
        same repository waits and then reuses this one's work.
        """
        with self.state.store.writer():
            return self._sync_locked(candidates, walk_skips, remove, progress)

    def _sync_locked(
        self,
        candidates: list[Candidate],
        walk_skips: list[SkippedFile],
        remove: set[str] | None,
        progress: Progress | None,
        stored_rows: tuple[dict[str, FileEntry], dict[str, SkipRow]] | None = None,
    ) -> tuple[int, int, int]:
        """:meth:`_sync` under the writer lock; ``stored_rows`` are the store's file
        entries and skipped rows when the caller read them under this same lock."""
        state = self.state
        store = state.store
        if stored_rows is None:
            with _gc_paused():
                stored_rows = store.file_entries(), store.skipped_rows()
        known, known_skips = stored_rows
        todo, touch, reused = self._changes(candidates, known, known_skips)
        cand_paths = {c.path for c in candidates}
        if remove is None:
            gone = (known.keys() - cand_paths) | (known_skips.keys() - cand_paths)
        else:
            gone = {p for p in remove if p in known or p in known_skips} - cand_paths
        gone.update(s.path for s in walk_skips if s.path in known or s.path in known_skips)
        self.written.add((c.path for c in todo), gone)
        with store.batch() as w:
            w.delete_paths(sorted(gone))
            for path, mtime in touch:
                w.touch(path, mtime)
        total = len(candidates)
        done = reused
        if progress is not None:
            progress(done, total)
        results: list[SkippedFile] = []
        cold = not known and not known_skips and len(todo) >= BULK_THRESHOLD
        texts_first = cold or len(todo) >= TEXTS_FIRST_FILES
        started = time.monotonic()
        if texts_first:
            # Texts first: the file list and grep work before any symbol is extracted.
            state.progress = IndexProgress("texts", done, total, started)
        # closing(): a stop or an error shuts the parser pool down here, in this thread,
        # not whenever the suspended generator is collected (at interpreter exit, after
        # Ctrl-C, that left the pool's manager thread waiting forever).
        items = [(c.path, c.abspath, c.size, c.mtime_ns) for c in todo]
        with (
            store.bulk_load() if cold else contextlib.nullcontext(),
            contextlib.closing(self.parse_items(items, tags=not texts_first)) as batches,
        ):
            for batch in batches:
                if state.stop.is_set():
                    raise LoadInterrupted(f"the load of {state.root} was interrupted")
                with store.batch() as w:
                    for res in batch:
                        self.store_result(w, res, text_only=texts_first)
                results.extend(r for r in batch if isinstance(r, SkippedFile))
                state.searcher.texts_changed(
                    ((b.path, b.text) for b in batch if isinstance(b, Parsed)), ()
                )
                done += len(batch)
                if texts_first:
                    state.progress = IndexProgress("texts", done, total, started)
                if progress is not None:
                    progress(done, total)
        written = [c.path for c in todo]
        written += (path for path, _ in touch)
        self._refresh_state(
            walk_skips, results, gone, full=remove is None, stored=stored_rows, written=written
        )
        if texts_first:
            state.pending_symbols = len(store.unparsed_paths())
        # "Parsed" counts files whose text went in anew; a skipped file looked at again
        # (a fresh checkout gives every binary a new mtime) and skipped again is not.
        reskipped = sum(1 for r in results if r.path in known_skips)
        return len(todo) - reskipped, reused + reskipped, len(gone)

    def _changes(
        self,
        candidates: list[Candidate],
        known: Mapping[str, FileEntry],
        known_skips: Mapping[str, SkipRow],
    ) -> tuple[list[Candidate], list[tuple[str, int]], int]:
        """What to parse (in candidate order), which rows only need their new mtime
        (same content), and how many candidates the store already holds as they are.

        A file whose size is unchanged but whose mtime is not is read and hashed; the
        hashes of those files are fetched together, once all candidates are compared.
        """
        limit = self.state.settings.max_file_bytes
        todo: list[Candidate] = []
        touch: list[tuple[str, int]] = []
        recheck: list[int] = []  # indexes into todo: same size, new mtime
        reused = 0
        for c in candidates:
            e = known.get(c.path)
            if e is not None and e.size == c.size and c.size <= limit:
                if e.mtime_ns == c.mtime_ns:
                    reused += 1
                    continue
                recheck.append(len(todo))
            elif _skip_holds(known_skips.get(c.path), c, limit):
                reused += 1
                continue
            todo.append(c)
        if not recheck:
            return todo, touch, reused
        rows = self.state.store.file_rows([todo[i].path for i in recheck])
        settled: set[int] = set()
        for i in recheck:
            c = todo[i]
            row = rows.get(c.path)
            if row is not None and _same_content(c.abspath, row.hash):
                touch.append((c.path, c.mtime_ns))
            elif not _skip_holds(known_skips.get(c.path), c, limit):
                continue
            reused += 1
            settled.add(i)
        return [c for i, c in enumerate(todo) if i not in settled], touch, reused

    def parse_items(
        self, items: list[Item], *, tags: bool
    ) -> Generator[list[Parsed | SkippedFile], None, None]:
        """Parse results of ``items`` in batches (see :func:`.parse.worker.parse_items`)."""
        state = self.state
        explicit = self.scope.single is not None
        return parse_items(items, state.settings, explicit=explicit, tags=tags)

    def store_result(
        self, w: StoreBatch, res: Parsed | SkippedFile, *, text_only: bool = False
    ) -> None:
        if isinstance(res, Parsed):
            if text_only:
                w.put_text(res.row, res.text)
            else:
                w.put_file(res.row, res.text, res.defs, res.refs, res.docs)
        elif res.reason in CONTENT_SKIPS:
            st = self._stat(res.path)
            if st is not None:
                w.put_skipped(res, st[0], st[1])
            else:
                w.delete_paths([res.path])
        else:
            w.delete_paths([res.path])

    def _stat(self, rel: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.state.root / unescape(rel))
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _refresh_state(
        self,
        walk_skips: list[SkippedFile],
        results: list[SkippedFile],
        gone: set[str],
        *,
        full: bool,
        stored: tuple[dict[str, FileEntry], dict[str, SkipRow]],
        written: list[str],
    ) -> None:
        """Swap in the file table.

        ``stored`` is what the store held when the sync began (read under the writer
        lock; the file entries are the caller's to give away). Since then the sync
        deleted ``gone`` and wrote only the rows of ``written``, so only those are
        read again: a warm load of an unchanged tree reads nothing more.
        """
        store, table = self.state.store, self.state.table
        with _gc_paused():
            entries, stored_skips = stored
            if len(written) > REREAD_ALL:
                entries = store.file_entries()
            elif gone or written:
                for p in gone:
                    entries.pop(p, None)
                for p in written:
                    entries.pop(p, None)
                fresh = store.file_entries(written) if written else {}
                if fresh:
                    entries.update(fresh)
                    entries = dict(sorted(entries.items()))
            if gone or written:
                stored_skips = store.skipped_rows()
            skips: dict[str, SkippedFile] = {} if full else dict(table.skips)
            for p in gone:
                skips.pop(p, None)
            for p in [p for p in skips if p in entries]:
                del skips[p]
            for row in stored_skips.values():
                skips[row.skip.path] = row.skip
            for r in results:
                skips[r.path] = r
            for sk in walk_skips:
                skips[sk.path] = sk
            self.state.searcher.texts_changed((), gone)
            table.replace(entries, dict(sorted(skips.items())))

    def make_report(self, parsed: int, reused: int, removed: int, seconds: float) -> LoadReport:
        table = self.state.table
        entries = list(table.entries.values())
        skips = list(table.skips.values())
        rep = LoadReport(root=str(self.state.root), git=self.scope.git)
        rep.files = len(entries)
        rep.bytes = sum(e.size for e in entries)
        rep.tokens = sum(e.tokens for e in entries)
        rep.lines = sum(e.lines for e in entries)
        languages = Counter(e.language for e in entries if e.language)
        rep.languages = dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])))
        rep.invalid_utf8 = [e.path for e in entries if e.invalid_utf8]
        rep.skipped = skips
        rep.symbols = self.state.store.symbol_count()
        rep.parsed, rep.reused, rep.removed = parsed, reused, removed
        rep.seconds = seconds
        return rep


def _skip_holds(sk: SkipRow | None, c: Candidate, limit: int) -> bool:
    """Whether the stored skip ``sk`` still stands for ``c`` (same size and mtime, and
    ``too_large`` exactly when it still is)."""
    return (
        sk is not None
        and sk.size == c.size
        and sk.mtime_ns == c.mtime_ns
        and (sk.skip.reason == "too_large") == (c.size > limit)
    )


def _same_content(abspath: str, stored_hash: str) -> bool:
    try:
        with open(abspath, "rb") as fh:
            return content_hash(fh.read()) == stored_hash
    except OSError:
        return False


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building tables of long-lived objects.

    Each collection that the allocations trigger scans every object built so far
    (none of which is garbage): on a 170,000-file warm load that was a fifth of
    the time. Collections resume afterwards unless something else had them off;
    a thread that allocates meanwhile only collects later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
