"""The second pass of a cold load: the trigram index, then symbols and references.

After the texts pass (:mod:`rlm_mcp.index.sync`) every file's text is stored
and grep works; :class:`Completer` builds the trigram index in bounded steps
and then parses the files the store lists as unparsed, in the caller's thread
or in a daemon thread (a cold load in the server returns at once). It works
from what the store says is missing, so a load killed half-way finishes on the
next load, and each step is its own write under the store's writer lock, so
watcher batches interleave.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from rlm_mcp.errors import LoadInterrupted
from rlm_mcp.index.discover.names import unescape
from rlm_mcp.index.model import IndexProgress, SkippedFile
from rlm_mcp.index.parse.worker import Parsed
from rlm_mcp.index.sync import BULK_THRESHOLD, IndexState, Progress, Syncer

__all__ = ["Completer"]

log = logging.getLogger(__name__)

MAX_SYMBOL_ROUNDS = 5
TEXT_INDEX_STEP = 2_000
"""Files added to the trigram index per write transaction while it is built."""


class Completer:
    """Completes one repository's index; at most one background thread at a time."""

    def __init__(self, state: IndexState, sync: Syncer) -> None:
        self._state = state
        self._sync = sync
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rerun = False
        self._done = threading.Event()
        self._done.set()
        self.error: str | None = None
        """Why the background pass failed (it stops; the server keeps serving)."""

    def needed(self) -> bool:
        """Whether the text index or some files' symbols are still to be built."""
        store = self._state.store
        done, total = store.text_index_progress()
        return done < total or bool(store.unparsed_paths())

    def complete(self, progress: Progress | None = None) -> None:
        """The trigram index, then symbols and references; idempotent and resumable.

        Each step is its own write under the store's writer lock, so watcher
        batches interleave; a file the watcher stored meanwhile is not
        overwritten with this pass's older parse. Setting the state's ``stop``
        ends it between steps.
        """
        state = self._state
        with self._sync.written.tracking():
            self._complete_text_index(progress)
            self._complete_symbols(progress)
        if not state.stop.is_set():
            state.progress = IndexProgress("complete", 0, 0, time.monotonic())

    def _complete_text_index(self, progress: Progress | None) -> None:
        state = self._state
        store = state.store
        done, total = store.text_index_progress()
        started = time.monotonic()
        while not state.stop.is_set():
            state.progress = IndexProgress("text index", done, total, started)
            with store.writer():
                finished = store.index_texts(TEXT_INDEX_STEP)
            done, total = store.text_index_progress()
            if progress is not None:
                progress(done, total)
            if finished:
                return

    def _complete_symbols(self, progress: Progress | None) -> None:
        """Parse what is unparsed, in rounds: a round skips files written meanwhile, and
        files stored text-first meanwhile (a big watcher batch) are left for the next.

        When most files are unparsed (the pass after a cold load) the store may
        drop its name indexes and build them once at the end, as a cold load does:
        keeping B-trees over millions of names current row by row costs more than
        the rows. Name look-ups are slower meanwhile; their results are partial anyway.
        """
        state = self._state
        unparsed = len(state.store.unparsed_paths())
        bulk = unparsed >= max(BULK_THRESHOLD, len(state.table.entries) // 2)
        try:
            with state.store.bulk_load() if bulk else contextlib.nullcontext():
                for _ in range(MAX_SYMBOL_ROUNDS):
                    self._sync.written.clear()
                    if not self._symbols_round(progress):
                        break
                    if state.stop.is_set():
                        # Leave the name indexes to the next open rather than sort now.
                        raise LoadInterrupted(f"indexing {state.root} was stopped")
        except LoadInterrupted:
            return
        rep = state.report
        state.report = self._sync.make_report(rep.parsed, rep.reused, rep.removed, rep.seconds)
        # Searchers' caches (the repository map) key on the version: bump it.
        state.table.replace(dict(state.table.entries), dict(state.table.skips))

    def _symbols_round(self, progress: Progress | None) -> bool:
        """One pass over the unparsed files; ``False`` when there was nothing to do."""
        state = self._state
        entries = state.table.entries
        items = [
            (p, str(state.root / unescape(p)), e.size, e.mtime_ns)
            for p in state.store.unparsed_paths()
            if (e := entries.get(p)) is not None
        ]
        state.pending_symbols = len(items)
        if not items:
            return False
        started = time.monotonic()
        done, total = 0, len(items)
        state.progress = IndexProgress("symbols", done, total, started)
        with contextlib.closing(self._sync.parse_items(items, tags=True)) as batches:
            for batch in batches:
                self._store_symbols(batch)
                done += len(batch)
                state.pending_symbols = max(0, total - done)
                state.progress = IndexProgress("symbols", done, total, started)
                if progress is not None:
                    progress(done, total)
                if state.stop.is_set():
                    break
        return True

    def _store_symbols(self, batch: list[Parsed | SkippedFile]) -> None:
        """Store one batch of the symbols pass, skipping files written since it was read."""
        store = self._state.store
        with store.writer():
            dirty = self._sync.written.snapshot()
            with store.batch() as w:
                for res in batch:
                    if res.path not in dirty:
                        self._sync.store_result(w, res)

    # -- in the background -----------------------------------------------------

    def start(self) -> None:
        """Run :meth:`complete` in a daemon thread.

        Called again while one runs, it makes that thread go round once more, so
        files stored text-first meanwhile are not left unparsed.
        """
        with self._lock:
            self._rerun = True
            if self._thread is not None:
                return
            if self._state.stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"rlm-complete-{self._state.root.name}", daemon=True
            )
            self._done.clear()
            self._thread.start()

    def _run(self) -> None:
        state = self._state
        try:
            while True:
                with self._lock:
                    if not self._rerun or state.stop.is_set():
                        self._thread = None  # decided under the lock: a later start begins anew
                        return
                    self._rerun = False
                if not self.needed():
                    state.pending_symbols = 0
                    continue
                try:
                    self.complete()
                    if not state.stop.is_set():
                        # The first map of a monorepo takes a minute (the whole reference
                        # graph): compute and save it here rather than on a request.
                        state.searcher.repo_map(64)
                except Exception as exc:  # a store error must not kill the server; say so
                    if state.stop.is_set():
                        continue
                    log.exception("completing the index of %s failed", state.root)
                    self.error = f"{type(exc).__name__}: {exc}"
                    with self._lock:
                        self._thread = None
                        return
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a background completion ends; ``True`` if it has (or none ran)."""
        return self._done.wait(timeout)

    def join(self) -> None:
        """Wait for the background thread to end (after the state's ``stop`` is set)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
