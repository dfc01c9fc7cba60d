"""Loading a repository and keeping its index in step with the disk.

:func:`load` opens the store and runs the passes ARCHITECTURE.md describes:
the texts pass (:class:`~rlm_mcp.index.sync.Syncer`, which also applies a
refresh or a watcher batch), then the text index and symbols passes
(:class:`~rlm_mcp.index.completion.Completer`), maybe in a thread.
:class:`Repository` is the face over them and over the read side
(:class:`~rlm_mcp.index.search.searcher.Searcher`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index.completion import Completer
from rlm_mcp.index.discover.ignore import IGNORE_FILES
from rlm_mcp.index.discover.names import escape
from rlm_mcp.index.files import FileTable
from rlm_mcp.index.model import FileEntry, IndexProgress, LoadReport
from rlm_mcp.index.search.searcher import Searcher
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.open import open_store
from rlm_mcp.index.sync import IndexState, Progress, Syncer

__all__ = ["Repository", "load"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class _ReadSide(Generic[P, R]):
    """A read-side method of :class:`Repository`: its searcher's method of the same name,
    with that method's signature (for callers and type checkers) and docstring."""

    def __init__(self, method: Callable[Concatenate[Searcher, P], R]) -> None:
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, repo: None, owner: type[Repository] | None = None) -> Self: ...

    @overload
    def __get__(
        self, repo: Repository, owner: type[Repository] | None = None
    ) -> Callable[P, R]: ...

    def __get__(
        self, repo: Repository | None, owner: type[Repository] | None = None
    ) -> Self | Callable[P, R]:
        if repo is None:
            return self
        method: Callable[P, R] = getattr(repo.searcher, self._name)
        return method


class Repository:
    """An indexed repository: file list, text, symbols, references and a load report.

    All public methods are thread-safe. ``version`` increments on every applied
    change; ``updated_at`` is the wall-clock time of the last one. The read
    side (grep, symbols, ranked search, the map) is a :class:`Searcher` over
    the same store and file table: those methods are the searcher's own.
    """

    def __init__(
        self,
        root: Path,
        settings: IndexSettings,
        store: IndexStore,
        *,
        single: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.root = root
        self.settings = settings
        self.store = store
        self.table = FileTable(root)
        self.searcher = Searcher(
            self.table,
            store,
            lambda: self._state.report,
            grep_timeout=settings.grep_timeout_seconds,
            max_file_bytes=settings.max_file_bytes,
        )
        self._state = IndexState(
            root, settings, store, self.table, self.searcher, stop or threading.Event()
        )
        self._sync = Syncer(self._state, single=single)
        self._completion = Completer(self._state, self._sync)

    # -- public state ----------------------------------------------------------

    @property
    def report(self) -> LoadReport:
        """What the last load, refresh or applied change did."""
        return self._state.report

    @property
    def progress_state(self) -> IndexProgress | None:
        return self._state.progress

    @property
    def completion_error(self) -> str | None:
        return self._completion.error

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
        return self._state.pending_symbols > 0

    def partial_note(self) -> str | None:
        """What a result computed from symbols should say while the index is partial."""
        pending = self._state.pending_symbols
        if pending <= 0:
            return None
        total = len(self.table.entries)
        state = self._state.progress
        eta = state.eta_seconds(time.monotonic()) if state and state.phase == "symbols" else None
        left = f", about {eta:.0f}s left" if eta is not None else ""
        return (
            f"index partial: symbols and references are extracted for {total - pending:,} of "
            f"{total:,} files so far (still indexing{left}); grep and file reads cover every file"
        )

    def close(self) -> None:
        self._state.stop.set()
        self._completion.join()
        self.searcher.drop_text_cache()
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the read side: the searcher's methods ---------------------------------

    files = _ReadSide(Searcher.files)
    text = _ReadSide(Searcher.text)
    read = _ReadSide(Searcher.read)
    grep = _ReadSide(Searcher.grep)
    search = _ReadSide(Searcher.search)
    symbols = _ReadSide(Searcher.symbols)
    did_you_mean = _ReadSide(Searcher.did_you_mean)
    definition = _ReadSide(Searcher.definition)
    references = _ReadSide(Searcher.references)
    callers = _ReadSide(Searcher.callers)
    outline = _ReadSide(Searcher.outline)
    enclosing = _ReadSide(Searcher.enclosing)
    repo_map = _ReadSide(Searcher.repo_map)
    layout = _ReadSide(Searcher.layout)
    summary = _ReadSide(Searcher.summary)

    # -- the passes (see Syncer and Completer) -----------------------------------

    def refresh(self, progress: Progress | None = None) -> LoadReport:
        """Full rescan: rediscover files, parse what changed, drop what is gone."""
        return self._sync.refresh(progress)

    def needs_completion(self) -> bool:
        """Whether the text index or some files' symbols are still to be built."""
        return self._completion.needed()

    def complete(self, progress: Progress | None = None) -> None:
        """The second pass of a cold load: the trigram index, then symbols and references.

        Idempotent and resumable: it works from what the store says is missing,
        so a load killed half-way finishes here on the next load. Each step is
        its own write under the store's writer lock, so watcher batches
        interleave; a file the watcher stored meanwhile is not overwritten with
        this pass's older parse. :meth:`close` stops it between steps.
        """
        self._completion.complete(progress)

    def start_completion(self) -> None:
        """Run :meth:`complete` in a daemon thread (a cold load in the server returns at once).

        Called again while one runs, it makes that thread go round once more, so
        files stored text-first meanwhile are not left unparsed.
        """
        self._completion.start()

    def wait_complete(self, timeout: float | None = None) -> bool:
        """Block until a background completion ends; ``True`` if it has (or none ran)."""
        return self._completion.wait(timeout)

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
        report = self._sync.apply(changed, deleted)
        if self._state.pending_symbols:
            # A big change set (a branch switch) went in text-first: symbols follow, after
            # the trigram index when the store started it over (complete() does both).
            self._completion.start()
        return report


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
    repo = Repository(root, settings, store, single=single, stop=stop)
    try:
        with store.batch() as w:
            w.set_meta("root", escape(str(resolved)))  # a non-UTF-8 root, as names are
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
