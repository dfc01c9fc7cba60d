"""Loading a repository and keeping its index in step with the disk.

:func:`load` discovers files, reuses whatever the store already holds
for files whose size and mtime (or content hash) are unchanged, and parses
only the rest: in-process for a handful of files, in a process pool for more,
streaming results into the store so that memory stays bounded whatever the
repository size. :meth:`Repository.apply_changes` runs the same pipeline on a
few paths for the watcher.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import LoadInterrupted, RepositoryNotFound
from rlm_mcp.index.discover.ignore import IGNORE_FILES, IgnoreMatcher
from rlm_mcp.index.discover.walker import (
    Candidate,
    GitListing,
    discover,
    git_list,
    stat_candidate,
)
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.model import (
    Definition,
    FileEntry,
    IndexProgress,
    LoadReport,
    Reference,
    SkippedFile,
    SkipRow,
)
from rlm_mcp.index.parse.worker import Parsed, content_hash, parse_items
from rlm_mcp.index.search.grep import GrepHit
from rlm_mcp.index.search.ranked import SearchHit
from rlm_mcp.index.search.searcher import Searcher
from rlm_mcp.index.store.base import IndexStore, StoreBatch
from rlm_mcp.index.store.open import open_store

__all__ = ["Repository", "load"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
BULK_THRESHOLD = 200
MAX_SYMBOL_ROUNDS = 5
TEXTS_FIRST_FILES = 2_000
"""A change set this large (a branch switch) stores texts first, symbols in a second pass."""
TEXT_INDEX_STEP = 2_000
"""Files added to the trigram index per write transaction while it is built."""
REREAD_ALL = 5_000
"""A sync that wrote more rows than this reads the whole file table back, not just those rows."""
CONTENT_SKIPS = frozenset({"binary", "too_large", "generated", "minified"})


class Repository:
    """An indexed repository: file list, text, symbols, references and a load report.

    All public methods are thread-safe. ``version`` increments on every applied
    change; ``updated_at`` is the wall-clock time of the last one. The read
    side (grep, symbols, ranked search, the map) is a :class:`Searcher` over
    the same store and file table; the methods below delegate to it.
    """

    def __init__(self, root: Path, settings: IndexSettings, store: IndexStore) -> None:
        self.root = root
        self.settings = settings
        self.store = store
        self.report = LoadReport(root=str(root))
        self.table = FileTable(root)
        self.searcher = Searcher(
            self.table,
            store,
            lambda: self.report,
            grep_timeout=settings.grep_timeout_seconds,
            max_file_bytes=settings.max_file_bytes,
        )
        self._git = False
        self._single: str | None = None
        self._matcher: IgnoreMatcher | None = None
        # The second pass of a cold load (text index, then symbols), maybe in a thread.
        self._bg: threading.Thread | None = None
        self._bg_stop = threading.Event()
        self._bg_lock = threading.Lock()
        self._bg_dirty: set[str] = set()
        self._completing = False
        self._rerun = False
        self._bg_done = threading.Event()
        self._bg_done.set()
        self._pending_symbols = 0
        self.progress_state: IndexProgress | None = None
        self.completion_error: str | None = None

    # -- public state ----------------------------------------------------------

    @property
    def version(self) -> int:
        return self.table.version

    @property
    def updated_at(self) -> float:
        return self.table.updated_at

    @property
    def languages(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.table.entries.values():
            if e.language:
                counts[e.language] = counts.get(e.language, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def entries(self) -> dict[str, FileEntry]:
        return dict(self.table.entries)

    def entry(self, path: str) -> FileEntry | None:
        return self.table.entries.get(path)

    def wait_for_version(self, version: int, timeout: float = 5.0) -> bool:
        """Block until ``self.version >= version``; ``False`` on timeout."""
        return self.table.wait_for_version(version, timeout)

    @property
    def partial(self) -> bool:
        """Symbols and references are still being extracted for some files."""
        return self._pending_symbols > 0

    def partial_note(self) -> str | None:
        """What a result computed from symbols should say while the index is partial."""
        pending = self._pending_symbols
        if pending <= 0:
            return None
        total = len(self.table.entries)
        state = self.progress_state
        eta = state.eta_seconds(time.monotonic()) if state and state.phase == "symbols" else None
        left = f", about {eta:.0f}s left" if eta is not None else ""
        return (
            f"index partial: symbols and references are extracted for {total - pending:,} of "
            f"{total:,} files so far (still indexing{left}); grep and file reads cover every file"
        )

    def close(self) -> None:
        self._bg_stop.set()
        with self._bg_lock:
            bg = self._bg
        if bg is not None and bg is not threading.current_thread():
            bg.join()
        self.searcher.drop_text_cache()
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the read side (see Searcher) ---------------------------------------------

    def files(self, glob: str = "**") -> list[str]:
        return self.searcher.files(glob)

    def text(self, path: str) -> str:
        return self.searcher.text(path)

    def read(self, path: str, start: int = 1, end: int | None = None) -> str:
        return self.searcher.read(path, start, end)

    def grep(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        *,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> list[GrepHit]:
        return self.searcher.grep(
            pattern, glob, max_results, ignore_case, fixed=fixed, offset=offset, context=context
        )

    def search(self, query: str, limit: int = 20, glob: str | None = None) -> list[SearchHit]:
        return self.searcher.search(query, limit, glob)

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> list[Definition]:
        return self.searcher.symbols(query, kind, path_glob, match, limit)

    def definition(self, name: str) -> list[Definition]:
        return self.searcher.definition(name)

    def references(self, name: str, limit: int = 200) -> list[Reference]:
        return self.searcher.references(name, limit)

    def callers(self, name: str, limit: int = 200) -> list[tuple[Reference, Definition | None]]:
        return self.searcher.callers(name, limit)

    def outline(self, path: str) -> list[Definition]:
        return self.searcher.outline(path)

    def enclosing(self, path: str, line: int) -> Definition | None:
        return self.searcher.enclosing(path, line)

    def repo_map(self, max_tokens: int = 1024, focus: str | Sequence[str] | None = None) -> str:
        return self.searcher.repo_map(max_tokens, focus)

    def layout(self, depth: int = 2) -> str:
        return self.searcher.layout(depth)

    def summary(self) -> str:
        return self.searcher.summary()

    # -- discovery -----------------------------------------------------------

    def _discover(
        self, listing: GitListing | None = None
    ) -> tuple[list[Candidate], list[SkippedFile]]:
        if self._single is not None:
            res = stat_candidate(
                str(self.root), self._single, follow_symlinks=self.settings.follow_symlinks
            )
            if isinstance(res, Candidate):
                return [res], []
            return [], [res] if res is not None else []
        found = discover(self.root, follow_symlinks=self.settings.follow_symlinks, listing=listing)
        self._git = found.git
        self._matcher = None
        own = self.store.own_path
        # Every candidate's path starts with the root's: only a store inside it can match.
        if own is None or not str(own).startswith(os.path.join(str(self.root), "")):
            return found.candidates, found.skipped
        prefix = str(own)
        return [c for c in found.candidates if not c.abspath.startswith(prefix)], found.skipped

    def _included(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` the ignore rules let in (existence not checked)."""
        paths = list(paths)
        if self._single is not None:
            return {p for p in paths if p == self._single}
        if self._git:
            listed = git_list(self.root, paths if len(paths) <= 200 else ())
            if listed is not None:
                allowed = set(listed)
                rlm = IgnoreMatcher(self.root, names=(".rlmignore",), use_info_exclude=False)
                return {p for p in paths if p in allowed and not rlm.is_ignored(p)}
        if self._matcher is None:
            self._matcher = IgnoreMatcher(self.root)
        m = self._matcher
        return {p for p in paths if not m.is_ignored(p)}

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
        with self.store.writer():
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
        store = self.store
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
        if self._completing:
            with self._bg_lock:
                self._bg_dirty.update(c.path for c in todo)
                self._bg_dirty.update(gone)
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
            self.progress_state = IndexProgress("texts", done, total, started)
        # closing(): a stop or an error shuts the parser pool down here, in this thread,
        # not whenever the suspended generator is collected (at interpreter exit, after
        # Ctrl-C, that left the pool's manager thread waiting forever).
        with (
            store.bulk_load() if cold else contextlib.nullcontext(),
            contextlib.closing(self._parse(todo, tags=not texts_first)) as batches,
        ):
            for batch in batches:
                if self._bg_stop.is_set():
                    raise LoadInterrupted(f"the load of {self.root} was interrupted")
                with store.batch() as w:
                    for res in batch:
                        self._store_result(w, res, text_only=texts_first)
                results.extend(r for r in batch if isinstance(r, SkippedFile))
                self.searcher.texts_changed(
                    ((b.path, b.text) for b in batch if isinstance(b, Parsed)), ()
                )
                done += len(batch)
                if texts_first:
                    self.progress_state = IndexProgress("texts", done, total, started)
                if progress is not None:
                    progress(done, total)
        written = [c.path for c in todo]
        written += (path for path, _ in touch)
        self._refresh_state(
            walk_skips, results, gone, full=remove is None, stored=stored_rows, written=written
        )
        if texts_first:
            self._pending_symbols = len(self.store.unparsed_paths())
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
        limit = self.settings.max_file_bytes
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
        rows = self.store.file_rows([todo[i].path for i in recheck])
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

    def _store_result(
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
            st = os.stat(self.root / rel)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _parse(
        self, todo: list[Candidate], *, tags: bool = True
    ) -> Generator[list[Parsed | SkippedFile], None, None]:
        return self._parse_items([(c.path, c.abspath, c.size, c.mtime_ns) for c in todo], tags)

    def _parse_items(
        self, items: list[tuple[str, str, int, int]], tags: bool
    ) -> Generator[list[Parsed | SkippedFile], None, None]:
        """Parse results of ``items`` in batches (see :func:`.parse.worker.parse_items`)."""
        return parse_items(items, self.settings, explicit=self._single is not None, tags=tags)

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
        with _gc_paused():
            entries, stored_skips = stored
            if len(written) > REREAD_ALL:
                entries = self.store.file_entries()
            elif gone or written:
                for p in gone:
                    entries.pop(p, None)
                for p in written:
                    entries.pop(p, None)
                fresh = self.store.file_entries(written) if written else {}
                if fresh:
                    entries.update(fresh)
                    entries = dict(sorted(entries.items()))
            if gone or written:
                stored_skips = self.store.skipped_rows()
            skips: dict[str, SkippedFile] = {} if full else dict(self.table.skips)
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
            self.searcher.texts_changed((), gone)
            self.table.replace(entries, dict(sorted(skips.items())))

    def _make_report(self, parsed: int, reused: int, removed: int, seconds: float) -> LoadReport:
        entries = list(self.table.entries.values())
        skips = list(self.table.skips.values())
        rep = LoadReport(root=str(self.root), git=self._git)
        rep.files = len(entries)
        rep.bytes = sum(e.size for e in entries)
        rep.tokens = sum(e.tokens for e in entries)
        rep.lines = sum(e.lines for e in entries)
        languages = Counter(e.language for e in entries if e.language)
        rep.languages = dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])))
        rep.invalid_utf8 = [e.path for e in entries if e.invalid_utf8]
        rep.skipped = skips
        rep.symbols = self.store.symbol_count()
        rep.parsed, rep.reused, rep.removed = parsed, reused, removed
        rep.seconds = seconds
        return rep

    # -- entry points --------------------------------------------------------

    def refresh(self, progress: Progress | None = None) -> LoadReport:
        """Full rescan: rediscover files, parse what changed, drop what is gone."""
        t0 = time.perf_counter()
        if not self.root.exists():
            log.warning("repository root %s is missing; keeping the last index", self.root)
            return self.report
        # Git lists the files in a process of its own while this one reads the store.
        listing = GitListing(self.root) if self._single is None else None
        try:
            with self.store.writer():
                with _gc_paused():
                    known = self.store.file_entries()
                    known_skips = self.store.skipped_rows()
                    candidates, skips = self._discover(listing)
                parsed, reused, removed = self._sync_locked(
                    candidates, skips, None, progress, (known, known_skips)
                )
        finally:
            if listing is not None:
                listing.close()
        self.report = self._make_report(parsed, reused, removed, time.perf_counter() - t0)
        return self.report

    def needs_completion(self) -> bool:
        """Whether the text index or some files' symbols are still to be built."""
        done, total = self.store.text_index_progress()
        return done < total or bool(self.store.unparsed_paths())

    def complete(self, progress: Progress | None = None) -> None:
        """The second pass of a cold load: the trigram index, then symbols and references.

        Idempotent and resumable: it works from what the store says is missing,
        so a load killed half-way finishes here on the next load. Each step is
        its own write under the store's writer lock, so watcher batches
        interleave; a file the watcher stored meanwhile is not overwritten with
        this pass's older parse. :meth:`close` stops it between steps.
        """
        self._completing = True
        try:
            self._complete_text_index(progress)
            self._complete_symbols(progress)
        finally:
            with self._bg_lock:
                self._bg_dirty.clear()
            self._completing = False
        if not self._bg_stop.is_set():
            self.progress_state = IndexProgress("complete", 0, 0, time.monotonic())

    def _complete_text_index(self, progress: Progress | None) -> None:
        store = self.store
        done, total = store.text_index_progress()
        started = time.monotonic()
        while not self._bg_stop.is_set():
            self.progress_state = IndexProgress("text index", done, total, started)
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
        unparsed = len(self.store.unparsed_paths())
        bulk = unparsed >= max(BULK_THRESHOLD, len(self.table.entries) // 2)
        try:
            with self.store.bulk_load() if bulk else contextlib.nullcontext():
                for _ in range(MAX_SYMBOL_ROUNDS):
                    with self._bg_lock:
                        self._bg_dirty.clear()
                    if not self._symbols_round(progress):
                        break
                    if self._bg_stop.is_set():
                        # Leave the name indexes to the next open rather than sort now.
                        raise LoadInterrupted(f"indexing {self.root} was stopped")
        except LoadInterrupted:
            return
        self.report = self._make_report(
            self.report.parsed, self.report.reused, self.report.removed, self.report.seconds
        )
        # Searchers' caches (the repository map) key on the version: bump it.
        self.table.replace(dict(self.table.entries), dict(self.table.skips))

    def _symbols_round(self, progress: Progress | None) -> bool:
        """One pass over the unparsed files; ``False`` when there was nothing to do."""
        store = self.store
        entries = self.table.entries
        items = [
            (p, str(self.root / p), e.size, e.mtime_ns)
            for p in store.unparsed_paths()
            if (e := entries.get(p)) is not None
        ]
        self._pending_symbols = len(items)
        if not items:
            return False
        started = time.monotonic()
        done, total = 0, len(items)
        self.progress_state = IndexProgress("symbols", done, total, started)
        with contextlib.closing(self._parse_items(items, tags=True)) as batches:
            for batch in batches:
                self._store_symbols(batch)
                done += len(batch)
                self._pending_symbols = max(0, total - done)
                self.progress_state = IndexProgress("symbols", done, total, started)
                if progress is not None:
                    progress(done, total)
                if self._bg_stop.is_set():
                    break
        return True

    def _store_symbols(self, batch: list[Parsed | SkippedFile]) -> None:
        """Store one batch of the symbols pass, skipping files written since it was read."""
        store = self.store
        with store.writer():
            with self._bg_lock:
                dirty = set(self._bg_dirty)
            with store.batch() as w:
                for res in batch:
                    if res.path not in dirty:
                        self._store_result(w, res)

    def start_completion(self) -> None:
        """Run :meth:`complete` in a daemon thread (a cold load in the server returns at once).

        Called again while one runs, it makes that thread go round once more, so
        files stored text-first meanwhile are not left unparsed.
        """
        with self._bg_lock:
            self._rerun = True
            if self._bg is not None:
                return
            if self._bg_stop.is_set():
                return
            self._bg = threading.Thread(
                target=self._run_completion, name=f"rlm-complete-{self.root.name}", daemon=True
            )
            self._bg_done.clear()
            self._bg.start()

    def _run_completion(self) -> None:
        try:
            while True:
                with self._bg_lock:
                    if not self._rerun or self._bg_stop.is_set():
                        self._bg = None  # decided under the lock: a later start begins anew
                        return
                    self._rerun = False
                if not self.needs_completion():
                    self._pending_symbols = 0
                    continue
                try:
                    self.complete()
                    if not self._bg_stop.is_set():
                        # The first map of a monorepo takes a minute (the whole reference
                        # graph): compute and save it here rather than on a request.
                        self.searcher.repo_map(64)
                except Exception as exc:  # a store error must not kill the server; say so
                    if self._bg_stop.is_set():
                        continue
                    log.exception("completing the index of %s failed", self.root)
                    self.completion_error = f"{type(exc).__name__}: {exc}"
                    with self._bg_lock:
                        self._bg = None
                        return
        finally:
            self._bg_done.set()

    def wait_complete(self, timeout: float | None = None) -> bool:
        """Block until a background completion ends; ``True`` if it has (or none ran)."""
        return self._bg_done.wait(timeout)

    def repair_if_corrupt(self) -> bool:
        """Check the store; if it is corrupt, rebuild it from the files. ``True`` if it was.

        The check reads the whole store, so the server runs it in the background
        after a load rather than on the request path.
        """
        problem = self.store.check()
        if problem is None:
            return False
        log.warning(
            "the index cache %s is corrupt (%s): rebuilding it", self.store.location, problem
        )
        with self.store.writer():
            self.store.reset()
            self.searcher.drop_text_cache()
            self.refresh()
        return True

    def apply_changes(self, changed: set[str], deleted: set[str]) -> LoadReport:
        """Re-classify and re-parse only ``changed``; drop ``deleted``.

        An edit to an ignore file (or to ``.git/info/exclude``) changes the
        file set itself, so it triggers a full :meth:`refresh` instead, which
        still re-parses only files whose content changed.
        """
        touched = changed | deleted
        if any(p.rsplit("/", 1)[-1] in IGNORE_FILES or p == ".git/info/exclude" for p in touched):
            return self.refresh()
        t0 = time.perf_counter()
        changed = {p for p in changed if not _in_git_dir(p)}
        deleted = {p for p in deleted if not _in_git_dir(p)}
        files: set[str] = set()
        gone: set[str] = set(deleted)
        known = self.table.entries
        known_skips = self.table.skips
        for p in deleted:
            prefix = p + "/"
            gone.update(k for k in known if k.startswith(prefix))
            gone.update(k for k in known_skips if k.startswith(prefix))
        unlisted: dict[str, SkippedFile] = {}
        for p in changed:
            full = self.root / p
            if full.is_dir() and not full.is_symlink():
                try:
                    sub = discover(
                        full, follow_symlinks=self.settings.follow_symlinks, use_git=False
                    )
                except RepositoryNotFound as exc:
                    unlisted[p] = SkippedFile(p, "unreadable", str(exc))
                    continue
                files.update(f"{p}/{c.path}" for c in sub.candidates)
                for sk in sub.skipped:
                    # Symlinks are judged again against the whole root, below.
                    rel = f"{p}/{sk.path}"
                    if sk.reason == "unreadable":
                        unlisted[rel] = SkippedFile(rel, sk.reason, sk.detail)
                    files.add(rel)
            else:
                files.add(p)
        allowed = self._included(files | set(unlisted))
        candidates: list[Candidate] = []
        skips: list[SkippedFile] = []
        for p in sorted(files | set(unlisted)):
            if p not in allowed:
                gone.add(p)
                continue
            if p in unlisted:
                skips.append(unlisted[p])
                continue
            res = stat_candidate(
                str(self.root),
                p,
                follow_symlinks=self.settings.follow_symlinks,
                check_parents=True,
            )
            if isinstance(res, Candidate):
                candidates.append(res)
            elif res is None:
                gone.add(p)
            else:
                skips.append(res)
        parsed, reused, removed = self._sync(candidates, skips, gone, None)
        self.report = self._make_report(parsed, reused, removed, time.perf_counter() - t0)
        if self._pending_symbols:
            # A big change set (a branch switch) went in text-first: symbols follow, after
            # the trigram index when the store started it over (complete() does both).
            self.start_completion()
        return self.report


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


def _in_git_dir(path: str) -> bool:
    return path == ".git" or path.startswith(".git/") or "/.git/" in path


def load(
    path: str | os.PathLike[str],
    settings: IndexSettings = IndexSettings(),  # noqa: B008 - frozen, safe default
    *,
    progress: Progress | None = None,
    store: IndexStore | None = None,
    commit: str | None = None,
    background: bool = False,
    stop: threading.Event | None = None,
) -> Repository:
    """Load (or warm-reload from the cache) the repository at ``path``.

    A directory (git work tree or not) or a single file both load. A missing
    path raises :class:`RepositoryNotFound` naming the path. ``store`` is
    where the index lives; by default :func:`~rlm_mcp.index.store.open.open_store`
    chooses it from ``settings.index_url`` (a SQLite file under the cache
    directory, or the shared PostgreSQL index, pinned to ``commit`` when given).
    The repository closes it.

    A cold load stores texts first, then builds the trigram index and extracts
    symbols (:meth:`Repository.complete`). ``background=True`` returns after
    the texts and runs the rest in a thread: results say the index is partial
    (:meth:`Repository.partial_note`) until it ends. Setting ``stop`` ends the
    load between batches with :class:`~rlm_mcp.errors.LoadInterrupted` (what was
    stored is kept; the next load resumes) and, later, the background pass.
    """
    t0 = time.perf_counter()
    given = Path(path).expanduser()
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RepositoryNotFound(f"repository path does not exist: {given} ({exc})") from None
    single: str | None = None
    root = resolved
    if not resolved.is_dir():
        if not resolved.is_file():
            raise RepositoryNotFound(f"not a directory or regular file: {given}")
        root, single = resolved.parent, resolved.name
    if store is None:
        store = open_store(settings, resolved, commit=commit)
    repo = Repository(root, settings, store)
    repo._single = single
    if stop is not None:
        repo._bg_stop = stop
    try:
        with store.batch() as w:
            w.set_meta("root", str(resolved))
    except BaseException:
        store.close()
        raise
    try:
        repo.refresh(progress)
        if background:
            repo.start_completion()
        elif repo.needs_completion():
            repo.complete(progress)
    except BaseException:
        repo.close()
        raise
    repo.report.seconds = time.perf_counter() - t0
    log.info(
        "loaded %s: %d files, %d parsed, %d reused, %d skipped in %.2fs",
        root,
        repo.report.files,
        repo.report.parsed,
        repo.report.reused,
        len(repo.report.skipped),
        repo.report.seconds,
    )
    return repo
