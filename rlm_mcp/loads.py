"""Loads that outlive the request that started them: ``rlm_load`` never blocks a client.

A cold load of a monorepo stores its texts for minutes; a client waits 30 s for
a tool (some less), and a request held that long also holds the client's
patience. So the server's ``rlm_load`` starts the load as a task of its own,
waits for it a little (``Settings.load_wait_seconds``), and when it is not done
returns the repository's status instead: ``loading``, files stored so far, files
in all. The load goes on; ``rlm_repos`` shows it, another ``rlm_load`` of the
same path reports on the same load (never a second one), and tools on the
repository say it is loading (``rlm_search`` answers from a direct scan of the
files on disk meanwhile). A load that fails is kept with its error until the
path is loaded again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import StillLoading
from rlm_mcp.index import SkippedFile, grep_block
from rlm_mcp.index.discover.names import escape
from rlm_mcp.index.search.globs import GlobSpec
from rlm_mcp.index.search.grepworker import GrepWorker
from rlm_mcp.index.search.scan import disk_grep
from rlm_mcp.schemas import GrepResult, LoadResult
from rlm_mcp.watch import Mode

__all__ = [
    "LoadSummary",
    "PendingLoad",
    "PendingLoads",
    "RepoStatus",
    "StillLoading",
    "Unloaded",
    "loading_result",
    "pending_status",
    "scan_while_loading",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class PendingLoad:
    """A load running (or failed) in the background."""

    name: str
    root: Path
    started: float
    stop: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[Any] | None = None
    done: int = 0
    total: int = 0
    error: str | None = None
    waiters: int = 0
    """Requests waiting on it now: only they are sent its progress."""

    def describe(self) -> str:
        if self.error is not None:
            return f"loading {self.name} failed: {self.error}"
        took = time.monotonic() - self.started
        stored = f"{self.done:,} of {self.total:,} files stored" if self.total else "listing files"
        return f"{self.name} is still loading ({stored}, {took:.0f} s so far)"


class PendingLoads:
    """The background loads by root, each started once."""

    def __init__(self) -> None:
        self._by_root: dict[Path, PendingLoad] = {}
        self._lock = threading.Lock()

    def get(self, root: Path) -> PendingLoad | None:
        with self._lock:
            return self._by_root.get(root)

    def named(self, name: str | None) -> PendingLoad | None:
        """The running load called ``name`` (any running load when ``name`` is empty)."""
        with self._lock:
            running = [p for p in self._by_root.values() if p.error is None]
        if not name:
            return running[-1] if running else None
        return next((p for p in running if p.name == name), None)

    def all(self) -> list[PendingLoad]:
        with self._lock:
            return list(self._by_root.values())

    async def run(
        self,
        root: Path,
        name: str,
        start: Callable[[Progress, threading.Event], Coroutine[Any, Any, Any]],
        *,
        wait: float,
        progress: Progress | None = None,
    ) -> tuple[Any, PendingLoad | None]:
        """``start``'s result when it ends within ``wait`` seconds, else ``(None, pending)``.

        ``start(progress, stop)`` is run once per root as a task of its own (a second
        call while it runs waits on the same task); the progress it reports is kept
        and passed on to ``progress`` while this call waits.
        """
        with self._lock:
            pending = self._by_root.get(root)
            if pending is not None and pending.error is not None:
                del self._by_root[root]  # a failed load is retried
                pending = None
            if pending is None:
                pending = PendingLoad(name, root, time.monotonic())
                self._by_root[root] = pending
                fresh = True
            else:
                fresh = False
        forward: list[Progress] = [progress] if progress is not None else []

        async def tracked(done: int, total: int) -> None:
            pending.done, pending.total = done, total
            for p in list(forward):
                await p(done, total)

        if fresh:
            pending.task = asyncio.get_running_loop().create_task(
                start(tracked, pending.stop), name=f"rlm-load:{name}"
            )
            pending.task.add_done_callback(lambda t: self._ended(pending, t))
        task = pending.task
        assert task is not None
        pending.waiters += 1
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, wait))
        finally:
            pending.waiters -= 1
            forward.clear()  # the request is answered: no progress on it any more
        if done:
            return task.result(), None  # raises the load's own error
        return None, pending

    def _ended(self, pending: PendingLoad, task: asyncio.Task[Any]) -> None:
        with self._lock:
            if task.cancelled():
                self._by_root.pop(pending.root, None)
                return
            exc = task.exception()
            if exc is None:
                self._by_root.pop(pending.root, None)
                return
            pending.error = str(exc) or type(exc).__name__
        if pending.waiters == 0:
            log.warning("background load of %s failed: %s", pending.root, pending.error)

    async def aclose(self) -> None:
        """Stop every running load (between batches: what was stored is kept)."""
        loads = self.all()
        for p in loads:
            p.stop.set()
        tasks = [p.task for p in loads if p.task is not None and not p.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class RepoStatus:
    """A loaded repository as ``rlm_repos`` lists it."""

    name: str
    root: str
    files: int
    tokens: int
    symbols: int
    languages: dict[str, int]
    index_version: int
    updated_at: float
    watching: bool
    watch_mode: Mode | None
    pending_changes: int
    last_applied_at: float | None
    last_error: str | None
    loaded_at: float
    partial: str | None = None
    indexing: str | None = None
    status: str = "ready"
    """``ready``; ``loading`` (a background load: ``files`` stored so far of ``files_total``);
    ``failed`` (``last_error`` says why; loading the path again retries)"""
    files_total: int | None = None
    fresh: bool = False
    """the index is checked to match the disk: watching, nothing noticed and unapplied (no
    file event, no git operation running or taken up), no symbols still being extracted"""


def pending_status(p: PendingLoad) -> RepoStatus:
    """A background load as ``rlm_repos`` lists it."""
    return RepoStatus(
        name=p.name,
        root=escape(str(p.root)),
        files=p.done,
        tokens=0,
        symbols=0,
        languages={},
        index_version=0,
        updated_at=0.0,
        watching=False,
        watch_mode=None,
        pending_changes=0,
        last_applied_at=None,
        last_error=p.error,
        loaded_at=0.0,
        indexing=p.describe(),
        status="failed" if p.error else "loading",
        files_total=p.total,
    )


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What one ``load`` indexed, skipped and reused."""

    name: str
    root: str
    files: int
    bytes: int
    tokens: int
    lines: int
    symbols: int
    languages: dict[str, int]
    skipped: dict[str, int]
    skipped_files: list[SkippedFile]
    invalid_utf8: list[str]
    parsed: int
    reused: int
    removed: int
    seconds: float
    git: bool
    index_version: int
    watching: bool
    reloaded: bool
    partial: str | None = None
    indexing: str | None = None
    status: str = "ready"
    files_total: int | None = None


@dataclass(frozen=True, slots=True)
class Unloaded:
    name: str
    root: str
    unloaded: bool = True


def loading_result(p: PendingLoad) -> LoadResult:
    """What ``rlm_load`` returns for a load still running: its status, zeros elsewhere."""
    return {
        "name": p.name,
        "root": escape(str(p.root)),
        "files": p.done,
        "bytes": 0,
        "tokens": 0,
        "lines": 0,
        "symbols": 0,
        "languages": {},
        "skipped": {},
        "skipped_files": [],
        "invalid_utf8": [],
        "parsed": 0,
        "reused": 0,
        "removed": 0,
        "seconds": round(time.monotonic() - p.started, 3),
        "git": False,
        "index_version": 0,
        "watching": False,
        "reloaded": False,
        "partial": "still loading",
        "indexing": p.describe(),
        "status": "loading",
        "files_total": p.total,
    }


async def scan_while_loading(
    loading: PendingLoad,
    pattern: str,
    *,
    ignore_case: bool,
    fixed: bool,
    glob: GlobSpec | None,
    context: int,
    offset: int,
    max_results: int,
    settings: IndexSettings,
) -> GrepResult:
    """``rlm_search`` on a repository still loading: a direct scan of its files on disk,
    the hits an indexed grep would give, labelled ``partial``."""
    source = re.escape(pattern) if fixed else pattern
    flags = re.IGNORECASE if ignore_case else 0
    worker = GrepWorker()
    try:
        found = await anyio.to_thread.run_sync(
            lambda: disk_grep(
                loading.root,
                source,
                flags=flags,
                glob=glob,
                context=context,
                settings=settings,
                worker=worker,
            ),
            abandon_on_cancel=True,
        )
    except anyio.get_cancelled_exc_class():
        worker.interrupt()
        raise
    finally:
        worker.close()
    hits, page = found if found is not None else ([], None)
    shown = hits[offset : offset + max_results]
    total = page.total if page is not None else 0
    return {
        "hits": [grep_block(h) for h in shown],
        "truncated": total > offset + len(shown),
        "total": total,
        "total_is_lower_bound": bool(page is not None and page.stopped),
        "offset": offset,
        "index_version": 0,
        "partial": f"{loading.describe()}: these hits come from a direct scan of the files on disk",
    }
