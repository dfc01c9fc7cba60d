"""The loaded repositories and everything wired to them: index, watcher, REPL, engine.

No MCP types here: the server and the CLI are both thin over this layer.
Blocking work (indexing, searching, sandbox execution) runs in worker threads
so that the event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from rlm_mcp.backends import LLMBackend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, Settings
from rlm_mcp.engine.build import build_engine
from rlm_mcp.engine.calls import Sampling
from rlm_mcp.engine.core import ProgressCallback, RLMEngine
from rlm_mcp.engine.replapi import (
    RepositoryLike,
)
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.errors import (
    ConfigError,
    PathNotAllowed,
    RepositoryNotFound,
    SandboxUnavailable,
    StillLoading,
    UnknownRepository,
)
from rlm_mcp.index import LoadReport, Repository
from rlm_mcp.index.discover.names import escape
from rlm_mcp.index.follow import Follower
from rlm_mcp.index.repository import load
from rlm_mcp.loads import (
    LoadSummary,
    PendingLoad,
    PendingLoads,
    RepoStatus,
    Unloaded,
    pending_status,
)
from rlm_mcp.sessions import ChatSession, SessionStore, exec_repl
from rlm_mcp.watch import RepositoryWatcher
from sandbox import ExecResult, SandboxError, detect_isolation

__all__ = ["LoadSummary", "LoadedRepo", "RepoStatus", "RlmService", "Unloaded"]

log = logging.getLogger(__name__)

LoadProgress = Callable[[int, int], Coroutine[Any, Any, None]]
FINAL_PROGRESS_WAIT = 5.0
"""Seconds the load thread waits for its last progress report to be sent."""


@dataclass(slots=True)
class LoadedRepo:
    """A repository the server has loaded, with its watcher."""

    name: str
    repo: Repository
    watcher: RepositoryWatcher | None
    loaded_at: float
    checker: threading.Thread | None = None
    follower: Follower | None = None

    def describe(self) -> RepoStatus:
        report = self.repo.report
        w = self.watcher
        # The order matters: what is pending is read before what is partial. An apply takes
        # its batch off `pending` only after it has started the symbols it leaves to do.
        watching = w is not None and w.mode != "stopped"
        pending = w.pending if w is not None else 0
        last_error = w.last_error if w is not None else None
        partial, indexing = self.repo.partial_note(), _indexing(self.repo)
        return RepoStatus(
            name=self.name,
            root=escape(str(self.repo.root)),
            files=report.files,
            tokens=report.tokens,
            symbols=report.symbols,
            languages=dict(report.languages),
            index_version=self.repo.version,
            updated_at=self.repo.updated_at,
            watching=watching,
            watch_mode=w.mode if w is not None else None,
            pending_changes=pending,
            last_applied_at=w.last_applied_at if w is not None else None,
            last_error=last_error,
            loaded_at=self.loaded_at,
            partial=partial,
            indexing=indexing,
            fresh=watching and not pending and not last_error and not partial and not indexing,
        )


def _indexing(repo: Repository) -> str | None:
    """The background pass in words ("symbols: 1,200 of 9,000 files, about 40s left")."""
    if repo.completion_error:
        return f"failed: {repo.completion_error}"
    state = repo.progress_state
    if state is None or state.phase == "complete":
        return None
    return state.describe(time.monotonic())


def _check_integrity(repo: Repository) -> None:
    """After a warm load: a cache corrupted on disk is found and rebuilt, off the request path."""
    try:
        repo.repair_if_corrupt()
    except Exception:
        log.exception("checking the index cache %s failed", repo.store.location)


def _name_for(path: Path, taken: Mapping[str, LoadedRepo]) -> str:
    base = escape(path.name) or "root"
    name, n = base, 2
    while name in taken and taken[name].repo.root != path:
        name, n = f"{base}-{n}", n + 1
    return name


class RlmService:
    """Loaded repositories by name, and the operations on them.

    Args:
        settings: server settings; ``allowed_roots`` confines :meth:`load`
            (empty means the user's home directory).
        root_backend / sub_backend: override the backends built from settings
            (library use and tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        root_backend: LLMBackend | None = None,
        sub_backend: LLMBackend | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self._repos: dict[str, LoadedRepo] = {}
        self._lock = threading.Lock()
        self._root_backend = root_backend
        self._sub_backend = sub_backend
        self._engine: RLMEngine | None = None
        self._owned: list[LLMBackend] = []
        self.sessions = SessionStore(settings.sessions)
        self.sessions.start_sweeper()
        self._scratch: Repository | None = None
        self._scratch_dirs: list[tempfile.TemporaryDirectory[str]] = []
        self._scratch_lock = threading.Lock()
        self.pending = PendingLoads()
        roots = settings.allowed_roots or (Path.home(),)
        self.allowed_roots = tuple(Path(r).expanduser().resolve() for r in roots)

    # -- repositories ----------------------------------------------------------------

    def check_allowed(self, path: str | Path) -> Path:
        """Resolve ``path`` (symlinks and ``..`` included) and refuse it outside the allowed roots."""
        if not isinstance(path, str | Path) or not str(path).strip():
            raise RepositoryNotFound("the path is empty")
        raw = Path(path).expanduser()
        try:
            resolved = raw.resolve(strict=True)
        except FileNotFoundError:
            raise RepositoryNotFound(f"no such file or directory: {raw}") from None
        except (OSError, RuntimeError) as exc:
            raise RepositoryNotFound(f"cannot resolve {raw}: {exc}") from None
        if not any(resolved == r or resolved.is_relative_to(r) for r in self.allowed_roots):
            roots = ", ".join(str(r) for r in self.allowed_roots)
            raise PathNotAllowed(
                f"{raw} resolves to {resolved}, outside the allowed roots ({roots}); "
                "start the server with --allow-root to permit it"
            )
        return resolved

    async def load(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        progress: LoadProgress | None = None,
        confine: bool = True,
        background: bool = False,
        stop: threading.Event | None = None,
    ) -> tuple[LoadedRepo, LoadSummary]:
        """Load (or reload) a repository; returns it and a summary of the load report.

        ``background``: a cold load returns once every text is stored (grep and
        reads work) and extracts symbols in a thread; results say the index is
        partial until it is done. Otherwise the load returns complete.
        """
        resolved = self.check_allowed(path) if confine else Path(path).expanduser().resolve()
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError("the repository name must be a non-empty string")
        existing = self._find_by_root(resolved)
        report_cb = self._thread_progress(progress)
        if existing is not None and (name is None or name == existing.name):
            report = await anyio.to_thread.run_sync(partial(existing.repo.refresh, report_cb))
            if background:
                existing.repo.start_completion()
            else:
                await anyio.to_thread.run_sync(partial(existing.repo.complete, report_cb))
            return existing, self._summary(existing, report, reloaded=True)
        stop = stop or threading.Event()
        try:
            repo = await anyio.to_thread.run_sync(
                partial(
                    load,
                    resolved,
                    self.settings.index,
                    progress=report_cb,
                    background=background,
                    stop=stop,
                )
            )
        except BaseException:
            stop.set()  # cancelled (Ctrl-C, client gone): the load thread stops between batches
            raise
        watcher: RepositoryWatcher | None = None
        if self.settings.index.watch and resolved.is_dir():
            watcher = RepositoryWatcher(repo, debounce=self.settings.index.debounce_seconds)
            try:
                watcher.start()
            except OSError as exc:
                log.warning("cannot watch %s: %s", resolved, exc)
                watcher = None
        follower: Follower | None = None
        index = self.settings.index
        if watcher is None and index.index_url and index.follow_seconds > 0:
            follower = Follower(repo, index.follow_seconds)
            follower.start()
        with self._lock:
            chosen = name.strip() if name else _name_for(resolved, self._repos)
            old = self._repos.get(chosen)
            loaded = LoadedRepo(chosen, repo, watcher, time.time(), follower=follower)
            self._repos[chosen] = loaded
        if repo.report.reused:
            loaded.checker = threading.Thread(
                target=_check_integrity, args=(repo,), name=f"rlm-check:{chosen}", daemon=True
            )
            loaded.checker.start()
        if old is not None:
            await anyio.to_thread.run_sync(self.sessions.close_repo, old.name)
            await anyio.to_thread.run_sync(self._close_repo, old)
        return loaded, self._summary(loaded, repo.report, reloaded=False)

    async def start_load(
        self, path: str | Path, name: str | None = None, *, progress: LoadProgress | None = None
    ) -> tuple[LoadSummary | None, PendingLoad | None]:
        """The server's load: the summary when it ends within ``load_wait_seconds``, else the
        load left running in the background (see :mod:`rlm_mcp.loads`)."""
        resolved = self.check_allowed(path)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError("the repository name must be a non-empty string")
        existing = self._find_by_root(resolved)
        with self._lock:
            chosen = name.strip() if name else (existing.name if existing else None)
            chosen = chosen or _name_for(resolved, self._repos)

        async def start(tracked: LoadProgress, stop: threading.Event) -> LoadSummary:
            _, summary = await self.load(
                resolved, name, progress=tracked, background=True, stop=stop
            )
            return summary

        wait = self.settings.load_wait_seconds
        return await self.pending.run(resolved, chosen, start, wait=wait, progress=progress)

    def _thread_progress(self, progress: LoadProgress | None) -> Callable[[int, int], None] | None:
        """``progress`` as a callback for the load thread, which it never blocks.

        The load thread must not wait on the event loop: after Ctrl-C (or any
        end of the loop) a blocking hand-off waited forever for a coroutine
        that no loop would run, and the process hung at exit. So a report is
        handed over without waiting; while one is still being sent, later ones
        are dropped, except the last (``done == total``), which waits a little.
        """
        if progress is None:
            return None
        loop = asyncio.get_running_loop()
        last = [0.0]
        sending: list[concurrent.futures.Future[None]] = []

        def send(done: int, total: int) -> concurrent.futures.Future[None] | None:
            try:
                return asyncio.run_coroutine_threadsafe(progress(done, total), loop)
            except RuntimeError:  # the loop is closed
                return None

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            final = done >= total
            if not final and now - last[0] < 0.1:
                return
            busy = bool(sending) and not sending[0].done()
            if busy and final:
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    sending[0].result(timeout=FINAL_PROGRESS_WAIT)
                busy = not sending[0].done()
            if busy or loop.is_closed():
                return
            last[0] = now
            fut = send(done, total)
            sending[:] = [] if fut is None else [fut]
            if fut is not None and final:
                try:
                    fut.result(timeout=FINAL_PROGRESS_WAIT)
                except concurrent.futures.TimeoutError:
                    pass
                except Exception:
                    log.debug("load progress failed", exc_info=True)

        return report

    @staticmethod
    def _summary(loaded: LoadedRepo, report: LoadReport, *, reloaded: bool) -> LoadSummary:
        return LoadSummary(
            name=loaded.name,
            root=escape(str(loaded.repo.root)),
            files=report.files,
            bytes=report.bytes,
            tokens=report.tokens,
            lines=report.lines,
            symbols=report.symbols,
            languages=dict(report.languages),
            skipped=report.skipped_by_reason(),
            skipped_files=list(report.skipped[:200]),
            invalid_utf8=list(report.invalid_utf8[:200]),
            parsed=report.parsed,
            reused=report.reused,
            removed=report.removed,
            seconds=round(report.seconds, 3),
            git=report.git,
            index_version=loaded.repo.version,
            watching=loaded.watcher is not None,
            reloaded=reloaded,
            partial=loaded.repo.partial_note(),
            indexing=_indexing(loaded.repo),
        )

    def _find_by_root(self, root: Path) -> LoadedRepo | None:
        with self._lock:
            return next((r for r in self._repos.values() if r.repo.root == root), None)

    def get(self, name: str | None = None) -> LoadedRepo:
        """The repository called ``name``; with no name, the only (or latest) one loaded."""
        with self._lock:
            if self._repos and not name:
                return max(self._repos.values(), key=lambda r: r.loaded_at)
            if name and name in self._repos:
                return self._repos[name]
            known = ", ".join(sorted(self._repos))
        pending = self.pending.named(name)
        if pending is not None:
            raise StillLoading(
                f"{pending.describe()}; poll rlm_repos, or call rlm_load with the same path to "
                "wait for it"
            )
        if not known:
            raise UnknownRepository("no repository is loaded: call rlm_load with a path first")
        raise UnknownRepository(f"no loaded repository is named {name!r}; loaded: {known}")

    def loading(self, name: str | None = None) -> PendingLoad | None:
        """The background load :meth:`get` would report for ``name`` (None: it finds a repo)."""
        with self._lock:
            if name in self._repos or (not name and self._repos):
                return None
        return self.pending.named(name)

    def list(self) -> list[RepoStatus]:
        with self._lock:
            repos = list(self._repos.values())
        ready = [r.describe() for r in sorted(repos, key=lambda r: r.name)]
        roots = {r.root for r in ready}
        return ready + [pending_status(p) for p in self.pending.all() if str(p.root) not in roots]

    async def unload(self, name: str) -> Unloaded:
        loaded = self.get(name)
        with self._lock:
            self._repos.pop(loaded.name, None)
        await anyio.to_thread.run_sync(self.sessions.close_repo, loaded.name)
        await anyio.to_thread.run_sync(self._close_repo, loaded)
        return Unloaded(loaded.name, str(loaded.repo.root))

    @staticmethod
    def _close_repo(loaded: LoadedRepo) -> None:
        if loaded.follower is not None:
            loaded.follower.stop()
        if loaded.checker is not None:
            loaded.checker.join()
        if loaded.watcher is not None:
            loaded.watcher.stop()
        loaded.repo.close()

    # -- the LLM ----------------------------------------------------------------------

    def engine(self) -> RLMEngine:
        """The engine, built on first use; raises BackendNotConfigured naming the settings."""
        if self._engine is not None:
            return self._engine
        self._engine, self._owned = build_engine(
            self.settings,
            self.limits,
            root_backend=self._root_backend,
            sub_backend=self._sub_backend,
        )
        return self._engine

    @property
    def llm_configured(self) -> bool:
        return self._root_backend is not None or self.settings.root_model is not None

    async def query(
        self,
        question: str,
        repo: str | None = None,
        limits: Mapping[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        context: str | None = None,
        context_label: str = "",
        session: str | None = None,
        sampling: Sampling | None = None,
        scratch: bool = False,
    ) -> RLMResult:
        """Ask the engine; it validates the question and the limits (:meth:`RLMEngine.run`).

        ``session``: a handle from an earlier result continues that session (its
        REPL variables, its history, its repository); ``None`` starts a fresh,
        private one. The result's ``session`` is the handle to continue with.
        ``scratch``: no repository; the question is over ``context`` alone.

        Raises:
            SessionNotFound: ``session`` expired, was evicted, or was never issued.
            ConfigError: ``session`` belongs to another repository than ``repo``.
        """
        chat, target = await self._open_session(session, repo, scratch)
        engine = self.engine()
        try:
            async with chat.busy:
                result = await engine.run(
                    question,
                    target,
                    limits=limits,
                    progress=progress,
                    context=context,
                    context_label=context_label,
                    conversation=chat.conversation,
                    sampling=sampling,
                )
        finally:
            self.sessions.release(chat)
        result.session = chat.handle
        return result

    async def _open_session(
        self, handle: str | None, repo: str | None, scratch: bool
    ) -> tuple[ChatSession, RepositoryLike]:
        """The session to run in (in use: release it after) and the repository it reads."""
        if handle is None:
            if scratch:
                target: RepositoryLike = await anyio.to_thread.run_sync(self._scratch_repo)
                name = None
            else:
                loaded = self.get(repo)
                target, name = loaded.repo, loaded.name
            return await anyio.to_thread.run_sync(self.sessions.create, name), target
        chat = await anyio.to_thread.run_sync(self.sessions.get, handle)
        try:
            if chat.repo is None:
                if repo is not None:
                    raise ConfigError(
                        "this session has no repository (it was started over a text); "
                        "start a new session to ask about a repository"
                    )
                return chat, await anyio.to_thread.run_sync(self._scratch_repo)
            if repo not in (None, "", chat.repo):
                raise ConfigError(
                    f"this session belongs to the repository {chat.repo!r}, not {repo!r}; "
                    "omit the repository or start a new session"
                )
            return chat, self.get(chat.repo).repo
        except BaseException:
            self.sessions.release(chat)
            raise

    def _scratch_repo(self) -> Repository:
        """An empty repository for questions over a text alone (made once)."""
        with self._scratch_lock:
            if self._scratch is None:
                root = tempfile.TemporaryDirectory(prefix="rlm-scratch-")
                cache = tempfile.TemporaryDirectory(prefix="rlm-scratch-cache-")
                self._scratch_dirs += [root, cache]
                index = IndexSettings(watch=False, cache_dir=Path(cache.name))
                self._scratch = load(Path(root.name), index)
            return self._scratch

    # -- the client-driven REPL -------------------------------------------------------

    async def exec(
        self, code: str, repo: str | None = None, *, session: str | None = None
    ) -> tuple[ExecResult, ChatSession]:
        """Run ``code`` in a session's REPL; returns the output and the session.

        With no ``session`` a fresh, private REPL starts (its handle is in the
        returned session); passing the handle back runs in the same REPL, whose
        variables survive between calls until the session ends.
        """
        if not isinstance(code, str) or not code.strip():
            raise ConfigError("the code is empty")
        chat, target = await self._open_session(session, repo, False)
        if not isinstance(target, Repository):  # pragma: no cover - service repos are Repository
            raise ConfigError("rlm_exec needs a loaded repository")

        def run() -> ExecResult:
            try:
                repl = exec_repl(
                    chat, target, self.settings.sandbox, self.limits.exec_timeout_seconds
                )
                return repl.exec(code)
            except SandboxError as exc:
                raise SandboxUnavailable(f"the REPL failed: {exc}") from None

        try:
            async with chat.busy:
                try:
                    return await anyio.to_thread.run_sync(run, abandon_on_cancel=True), chat
                except anyio.get_cancelled_exc_class():
                    if (repl := chat.conversation.session) is not None:
                        repl.interrupt()
                    raise
        finally:
            self.sessions.release(chat)

    @staticmethod
    def isolation() -> dict[str, Any]:
        report = detect_isolation()
        return {
            "level": report.level,
            "missing": list(report.missing),
            "description": report.describe(),
        }

    async def aclose(self) -> None:
        await self.pending.aclose()
        with self._lock:
            repos, self._repos = list(self._repos.values()), {}
        await anyio.to_thread.run_sync(self.sessions.close_all)
        for loaded in repos:
            await anyio.to_thread.run_sync(self._close_repo, loaded)
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            await anyio.to_thread.run_sync(scratch.close)
        for d in self._scratch_dirs:
            d.cleanup()
        self._scratch_dirs = []
        self._engine = None
        owned, self._owned = self._owned, []
        for backend in owned:
            await backend.aclose()
