"""Loading a repository and keeping its index in step with the disk.

:func:`load` discovers files, reuses whatever the SQLite cache already holds
for files whose size and mtime (or content hash) are unchanged, and parses
only the rest: in-process for a handful of files, in a process pool for more,
streaming results into the store so that memory stays bounded whatever the
repository size. :meth:`Repository.apply_changes` runs the same pipeline on a
few paths for the watcher.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from rlm_mcp.config import IndexSettings, default_cache_dir
from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.ignore import IGNORE_FILES, IgnoreMatcher
from rlm_mcp.index.model import FileEntry, LoadReport, SkippedFile
from rlm_mcp.index.search import SearchMixin
from rlm_mcp.index.store import FileRow, Store, db_path_for
from rlm_mcp.index.walker import (
    Candidate,
    Parsed,
    content_hash,
    discover,
    git_list,
    process,
    process_batch,
    stat_candidate,
)

__all__ = ["Repository", "load"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
POOL_THRESHOLD = 200
BULK_THRESHOLD = 200
BATCH_FILES = 48
CONTENT_SKIPS = frozenset({"binary", "too_large", "generated", "minified"})


def _mp_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` on Linux: forking a threaded server process is unsafe."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class Repository(SearchMixin):
    """An indexed repository: file list, text, symbols, references and a load report.

    All public methods are thread-safe. ``version`` increments on every applied
    change; ``updated_at`` is the wall-clock time of the last one.
    """

    def __init__(self, root: Path, settings: IndexSettings, store: Store) -> None:
        self.root = root
        self.settings = settings
        self.store = store
        self.version = 0
        self.updated_at = time.time()
        self.report = LoadReport(root=str(root))
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._entries: dict[str, FileEntry] = {}
        self._skips: dict[str, SkippedFile] = {}
        self._git = False
        self._single: str | None = None
        self._matcher: IgnoreMatcher | None = None
        SearchMixin.__init__(self)

    # -- public state ----------------------------------------------------------

    @property
    def languages(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for e in self._entries.values():
                if e.language:
                    counts[e.language] = counts.get(e.language, 0) + 1
            return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def is_git(self) -> bool:
        return self._git

    def entries(self) -> dict[str, FileEntry]:
        with self._lock:
            return dict(self._entries)

    def entry(self, path: str) -> FileEntry | None:
        with self._lock:
            return self._entries.get(path)

    def wait_for_version(self, version: int, timeout: float = 5.0) -> bool:
        """Block until ``self.version >= version``; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.version < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        self.drop_text_cache()
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- discovery -----------------------------------------------------------

    def _discover(self) -> tuple[list[Candidate], list[SkippedFile]]:
        if self._single is not None:
            res = stat_candidate(
                str(self.root), self._single, follow_symlinks=self.settings.follow_symlinks
            )
            if isinstance(res, Candidate):
                return [res], []
            return [], [res] if res is not None else []
        found = discover(self.root, follow_symlinks=self.settings.follow_symlinks)
        self._git = found.git
        self._matcher = None
        own = str(self.store.path)
        return [c for c in found.candidates if not c.abspath.startswith(own)], found.skipped

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
        candidates is deleted. Otherwise only ``remove`` is deleted.
        """
        store = self.store
        known = store.file_rows()
        known_skips = store.skipped_rows()
        todo: list[Candidate] = []
        touch: list[tuple[str, int]] = []
        reused = 0
        cand_paths = {c.path for c in candidates}
        limit = self.settings.max_file_bytes
        for c in candidates:
            row = known.get(c.path)
            if row is not None and row.size == c.size and c.size <= limit:
                if row.mtime_ns == c.mtime_ns:
                    reused += 1
                    continue
                try:
                    with open(c.abspath, "rb") as fh:
                        same = content_hash(fh.read()) == row.hash
                except OSError:
                    same = False
                if same:
                    touch.append((c.path, c.mtime_ns))
                    reused += 1
                    continue
            sk = known_skips.get(c.path)
            if (
                sk is not None
                and sk[0] == c.size
                and sk[1] == c.mtime_ns
                and (sk[2].reason == "too_large") == (c.size > limit)
            ):
                reused += 1
                continue
            todo.append(c)
        if remove is None:
            gone = (set(known) | set(known_skips)) - cand_paths
        else:
            gone = {p for p in remove if p in known or p in known_skips} - cand_paths
        walk_skip_paths = {s.path for s in walk_skips}
        gone |= (set(known) | set(known_skips)) & walk_skip_paths
        with store.transaction() as conn:
            if gone:
                store.delete_paths(conn, gone)
            for path, mtime in touch:
                store.touch(conn, path, mtime)
        total = len(candidates)
        done = reused
        if progress is not None:
            progress(done, total)
        results: list[SkippedFile] = []
        fresh = not known and not known_skips and len(todo) >= BULK_THRESHOLD
        with store.bulk_load() if fresh else contextlib.nullcontext():
            for batch in self._parse(todo):
                with store.transaction() as conn:
                    for res in batch:
                        self._store_result(conn, res, fresh=fresh)
                results.extend(r for r in batch if isinstance(r, SkippedFile))
                self._update_text_cache(b for b in batch if isinstance(b, Parsed))
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        self._refresh_state(walk_skips, results, gone, full=remove is None)
        return len(todo), reused, len(gone)

    def _store_result(
        self, conn: sqlite3.Connection, res: Parsed | SkippedFile, *, fresh: bool = False
    ) -> None:
        if isinstance(res, Parsed):
            row = FileRow(
                res.path,
                res.size,
                res.mtime_ns,
                res.hash,
                res.language,
                res.lines,
                res.tokens,
                res.invalid_utf8,
            )
            self.store.put_file(conn, row, res.text, res.defs, res.refs, fresh=fresh)
        elif res.reason in CONTENT_SKIPS:
            st = self._stat(res.path)
            if st is not None:
                self.store.put_skipped(conn, res, st[0], st[1], fresh=fresh)
            else:
                self.store.delete_paths(conn, [res.path])
        else:
            self.store.delete_paths(conn, [res.path])

    def _stat(self, rel: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.root / rel)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _parse(self, todo: list[Candidate]) -> Iterator[list[Parsed | SkippedFile]]:
        """Yield parse results in batches; a process pool only when it pays off."""
        limit = self.settings.max_file_bytes
        items = [(c.path, c.abspath, c.size, c.mtime_ns) for c in todo]
        if len(items) < POOL_THRESHOLD:
            for item in items:
                yield [process(item, limit, explicit=self._single is not None)]
            return
        workers = self.settings.workers or os.cpu_count() or 1
        batches = [items[i : i + BATCH_FILES] for i in range(0, len(items), BATCH_FILES)]
        max_inflight = workers * 3
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as pool:
            pending: set[Future[list[Parsed | SkippedFile]]] = set()
            it = iter(batches)
            for batch in it:
                pending.add(pool.submit(process_batch, batch, limit))
                if len(pending) >= max_inflight:
                    break
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.add(pool.submit(process_batch, nxt, limit))
                    yield fut.result()

    def _refresh_state(
        self,
        walk_skips: list[SkippedFile],
        results: list[SkippedFile],
        gone: set[str],
        *,
        full: bool,
    ) -> None:
        rows = self.store.file_rows()
        entries = {
            p: FileEntry(p, r.size, r.mtime_ns, r.language, r.lines, r.tokens, r.invalid_utf8)
            for p, r in sorted(rows.items())
        }
        skips: dict[str, SkippedFile] = {} if full else dict(self._skips)
        for p in gone:
            skips.pop(p, None)
        for p in entries:
            skips.pop(p, None)
        for _p, (_s, _m, sk) in self.store.skipped_rows().items():
            skips[sk.path] = sk
        for r in results:
            skips[r.path] = r
        for sk in walk_skips:
            skips[sk.path] = sk
        with self._cond:
            self._entries = entries
            self._skips = dict(sorted(skips.items()))
            for p in gone:
                self._forget_text(p)
            self.version += 1
            self.updated_at = time.time()
            self._cond.notify_all()

    def _make_report(self, parsed: int, reused: int, removed: int, seconds: float) -> LoadReport:
        with self._lock:
            entries = list(self._entries.values())
            skips = list(self._skips.values())
        rep = LoadReport(root=str(self.root), git=self._git)
        for e in entries:
            rep.files += 1
            rep.bytes += e.size
            rep.tokens += e.tokens
            rep.lines += e.lines
            if e.language:
                rep.languages[e.language] = rep.languages.get(e.language, 0) + 1
            if e.invalid_utf8:
                rep.invalid_utf8.append(e.path)
        rep.languages = dict(sorted(rep.languages.items(), key=lambda kv: (-kv[1], kv[0])))
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
        candidates, skips = self._discover()
        parsed, reused, removed = self._sync(candidates, skips, None, progress)
        self.report = self._make_report(parsed, reused, removed, time.perf_counter() - t0)
        return self.report

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
        known = self.entries()
        with self._lock:
            known_skips = set(self._skips)
        for p in deleted:
            prefix = p + "/"
            gone.update(k for k in known if k.startswith(prefix))
            gone.update(k for k in known_skips if k.startswith(prefix))
        for p in changed:
            full = self.root / p
            if full.is_dir() and not full.is_symlink():
                sub = discover(full, follow_symlinks=self.settings.follow_symlinks, use_git=False)
                files.update(f"{p}/{c.path}" for c in sub.candidates)
            else:
                files.add(p)
        allowed = self._included(files)
        candidates: list[Candidate] = []
        skips: list[SkippedFile] = []
        for p in sorted(files):
            if p not in allowed:
                gone.add(p)
                continue
            res = stat_candidate(str(self.root), p, follow_symlinks=self.settings.follow_symlinks)
            if isinstance(res, Candidate):
                candidates.append(res)
            elif res is None:
                gone.add(p)
            else:
                skips.append(res)
        parsed, reused, removed = self._sync(candidates, skips, gone, None)
        self.report = self._make_report(parsed, reused, removed, time.perf_counter() - t0)
        return self.report


def _in_git_dir(path: str) -> bool:
    return path == ".git" or path.startswith(".git/") or "/.git/" in path


def load(
    path: str | os.PathLike[str],
    settings: IndexSettings = IndexSettings(),  # noqa: B008 - frozen, safe default
    *,
    progress: Progress | None = None,
) -> Repository:
    """Load (or warm-reload from the cache) the repository at ``path``.

    A directory (git work tree or not) or a single file both load. A missing
    path raises :class:`RepositoryNotFound` naming the path.
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
    cache_dir = settings.cache_dir if settings.cache_dir is not None else default_cache_dir()
    key = resolved if single is not None else root
    store = Store(db_path_for(Path(cache_dir), key))
    repo = Repository(root, settings, store)
    repo._single = single
    try:
        repo.refresh(progress)
    except BaseException:
        store.close()
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
