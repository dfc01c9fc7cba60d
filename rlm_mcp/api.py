"""The library face: an RLM that behaves like a model call — a string in, an answer out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp.backends import LLMBackend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings, Settings
from rlm_mcp.engine.build import build_engine
from rlm_mcp.engine.conversation import Conversation
from rlm_mcp.engine.core import ProgressCallback, RLMEngine
from rlm_mcp.engine.hostfns import caller_functions
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.errors import (
    BackendAuthError,
    BackendConnectionLost,
    BackendError,
    BackendNotConfigured,
    BackendRateLimited,
    BackendResponseError,
    BackendTimeout,
    BackendUnreachable,
    BudgetExceeded,
    ConfigError,
    RepositoryNotFound,
)
from rlm_mcp.index import Repository
from rlm_mcp.index.repository import load
from rlm_mcp.settings_loader import load_config

__all__ = ["RLM", "RLMSession"]


class RLM:
    """A Recursive Language Model over a repository, a file or a long text.

    Example:
        >>> rlm = RLM(ModelEndpoint("gpt-4.1-mini"), sub=ModelEndpoint("gpt-4.1-nano"))
        >>> rlm.completion("Where is the retry policy configured?", "path/to/repo")
        >>> with rlm.session("path/to/repo") as s:
        ...     s.completion("Where is the retry policy configured?")
        ...     s.completion("And who calls it?")  # a follow-up: same REPL, history recalled

    With no arguments, ``RLM()`` reads the settings the CLI reads, through the
    same loader: ``RLM_MODEL``, ``RLM_BASE_URL``, ``RLM_API_KEY`` and the rest of
    the environment, the config file (``$XDG_CONFIG_HOME/rlm-mcp/config.toml``),
    the cache and trajectory directories (``XDG_CACHE_HOME``, ``RLM_CACHE_DIR``,
    ``XDG_STATE_HOME``) and the guardrails (``RLM_MAX_LLM_CALLS``...). Any
    argument given overrides what the settings say.

    Args:
        root: the endpoint of the root model (writes the REPL code).
        sub: the endpoint for ``llm_query`` sub-calls; defaults to ``root``.
        limits: guardrails for every query (per-call limits can only tighten them).
        index: how repositories are indexed (cache directory, size caps).
        sandbox: REPL worker limits.
        trajectory_dir: write each query's trajectory as JSON Lines here
            (the library writes none unless asked, unlike the CLI).
        root_backend / sub_backend: use these backends instead of building
            OpenAI-compatible ones from the endpoints (tests, custom providers).
        functions: the caller's own functions, callable from model code by name
            (``functions={"lookup_ticket": fn}``). They are *trusted code of the
            caller's*: they run in this process with its rights, while their
            arguments come from the model and must be treated as untrusted. Calls
            go through the sandbox's bounded host-call path with a 30 s timeout
            and 1 MB caps on arguments and results (see :mod:`rlm_mcp.engine.hostfns`);
            an exception becomes REPL output for the model.
        env: the environment the settings are read from (default ``os.environ``).
    """

    def __init__(
        self,
        root: ModelEndpoint | None = None,
        *,
        sub: ModelEndpoint | None = None,
        limits: Limits | None = None,
        index: IndexSettings | None = None,
        sandbox: SandboxSettings | None = None,
        trajectory_dir: Path | None = None,
        root_backend: LLMBackend | None = None,
        sub_backend: LLMBackend | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        config = load_config({}, os.environ if env is None else env)
        found = config.settings
        if root is None and root_backend is None:
            root = found.root_model
            sub = sub or found.sub_model
        self.root_endpoint = root
        self.sub_endpoint = sub or root
        self._root_backend = root_backend
        self._sub_backend = sub_backend
        self.limits = limits or config.limits
        self.index = index or replace(found.index, watch=False)
        self.sandbox = sandbox or found.sandbox
        self.trajectory_dir = trajectory_dir
        self.prices = found.prices_usd_per_mtok
        self.functions = caller_functions(functions)

    def _engine(self) -> tuple[RLMEngine, list[LLMBackend]]:
        settings = Settings(
            sandbox=self.sandbox,
            root_model=self.root_endpoint,
            sub_model=self.sub_endpoint if self.sub_endpoint is not self.root_endpoint else None,
            trajectory_dir=self.trajectory_dir,
            prices_usd_per_mtok=self.prices,
        )
        return build_engine(
            settings,
            self.limits,
            root_backend=self._root_backend,
            sub_backend=self._sub_backend,
            functions=self.functions,
        )

    async def _open(self, context: str | Path | Repository) -> _Target:
        """The repository to ask about, loading a path or a text (which the target owns)."""
        if isinstance(context, Repository):
            return _Target(context)
        path = Path(context) if isinstance(context, Path) else None
        if (
            path is None
            and isinstance(context, str)
            and len(context) < 4096
            and "\n" not in context
        ):
            candidate = Path(context).expanduser()
            if candidate.exists():
                path = candidate
            elif _looks_like_path(context):
                raise RepositoryNotFound(
                    f"no such file or directory: {candidate} (to analyse a literal "
                    "text, pass it with a newline or as a longer string)"
                )
        elif path is not None and not path.exists():
            raise RepositoryNotFound(f"no such file or directory: {path}")
        tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            tmp = tempfile.TemporaryDirectory(prefix="rlm-text-")
            path = Path(tmp.name) / "context.txt"
            path.write_text(str(context), encoding="utf-8")
        try:
            repo = await anyio.to_thread.run_sync(lambda: load(path, self.index))
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
        return _Target(repo, owned=True, tmp=tmp)

    async def _run(
        self,
        prompt: str,
        target: Repository,
        conversation: Conversation | None,
        limits: Limits | dict[str, Any] | None,
        progress: ProgressCallback | None,
    ) -> RLMResult:
        engine, owned = self._engine()
        try:
            return await engine.run(
                prompt, target, limits=limits, progress=progress, conversation=conversation
            )
        finally:
            for backend in owned:
                await backend.aclose()

    async def aquery(
        self,
        prompt: str,
        context: str | Path | Repository,
        *,
        limits: Limits | dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> RLMResult:
        """Answer ``prompt`` over ``context`` and return the full result.

        ``context`` is a loaded :class:`Repository`, a path to a directory or file,
        or a text (a string that is not an existing path), which is indexed as a
        single file.
        """
        target = await self._open(context)
        try:
            return await self._run(prompt, target.repo, None, limits, progress)
        finally:
            target.close()

    async def acompletion(self, prompt: str, context: str | Path | Repository) -> str:
        """Like :meth:`aquery` but returns only the answer text; raises when there is none.

        A provider failure raises :class:`~rlm_mcp.errors.BackendError`; a query
        stopped by a guardrail before any answer raises the
        :class:`~rlm_mcp.errors.BudgetExceeded` that stopped it. A partial
        answer after a limit is returned (check :meth:`aquery` for the status).
        """
        return _answer_or_raise(await self.aquery(prompt, context))

    def query(self, prompt: str, context: str | Path | Repository, **kwargs: Any) -> RLMResult:
        """Blocking :meth:`aquery`; works inside a running event loop too (Jupyter)."""
        return _run_blocking(lambda: self.aquery(prompt, context, **kwargs))

    def completion(self, prompt: str, context: str | Path | Repository) -> str:
        """Blocking: a string in, an answer out — the drop-in for a plain model call.

        Raises like :meth:`acompletion` instead of returning an empty string.
        """
        return _answer_or_raise(self.query(prompt, context))

    def session(self, context: str | Path | Repository) -> RLMSession:
        """A conversation over ``context``: follow-ups keep the REPL and recall the history.

        Use it as a context manager (``with`` or ``async with``), which stops the
        REPL at the end; or call :meth:`RLMSession.close` yourself.
        """
        return RLMSession(self, context)


class RLMSession:
    """Questions over one context, each a follow-up of the ones before.

    The REPL's variables survive between questions, and each question's first
    message recalls the earlier questions and answers (the oldest summarised by
    the sub model when they outgrow a quarter of the root's window). A session
    answers one question at a time.
    """

    def __init__(self, rlm: RLM, context: str | Path | Repository) -> None:
        self._rlm = rlm
        self._context = context
        self._target: _Target | None = None
        self.conversation = Conversation()

    @property
    def turns(self) -> int:
        """How many questions this session has answered (compacted ones included)."""
        return len(self.conversation.turns) + self.conversation.compacted_turns

    async def aquery(
        self,
        prompt: str,
        *,
        limits: Limits | dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> RLMResult:
        if self.conversation.closed:
            raise ConfigError("the session is closed: start a new one with RLM.session()")
        if self._target is None:
            self._target = await self._rlm._open(self._context)
        return await self._rlm._run(prompt, self._target.repo, self.conversation, limits, progress)

    async def acompletion(self, prompt: str) -> str:
        return _answer_or_raise(await self.aquery(prompt))

    def query(self, prompt: str, **kwargs: Any) -> RLMResult:
        return _run_blocking(lambda: self.aquery(prompt, **kwargs))

    def completion(self, prompt: str) -> str:
        """Blocking: the follow-up's answer text; raises like :meth:`RLM.completion`."""
        return _answer_or_raise(self.query(prompt))

    def reset(self) -> None:
        """Forget the history and the REPL's variables; the context stays loaded."""
        self.conversation.close()
        self.conversation = Conversation()

    def close(self) -> None:
        """Stop the REPL and release what the session loaded."""
        self.conversation.close()
        target, self._target = self._target, None
        if target is not None:
            target.close()

    def __enter__(self) -> RLMSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLMSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self.close)


@dataclass
class _Target:
    """A repository to ask about, and whether closing the target closes it."""

    repo: Repository
    owned: bool = False
    tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self.owned:
            self.repo.close()
        if self.tmp is not None:
            self.tmp.cleanup()


def _looks_like_path(text: str) -> bool:
    """A short one-line string that reads as a path the user mistyped, not as a text."""
    t = text.strip()
    if not t or " " in t:
        return False
    return "/" in t or "\\" in t or t.startswith("~") or Path(t).suffix != ""


_BY_KIND: dict[str, type[BackendError]] = {
    "not_configured": BackendNotConfigured,
    "unreachable": BackendUnreachable,
    "connection_lost": BackendConnectionLost,
    "timeout": BackendTimeout,
    "bad_response": BackendResponseError,
    "rate_limited": BackendRateLimited,
    "auth": BackendAuthError,
}


def _answer_or_raise(result: RLMResult) -> str:
    """The answer text; a failed query raises the provider's typed error (by its kind)."""
    if result.status == "error":
        error = _BY_KIND.get(result.error_kind or "", BackendError)
        if not result.answer.strip():
            raise error(result.error or "the query failed without an answer")
        raise error(f"{result.error} (partial answer: {result.answer[:200]!r})")
    if not result.answer.strip():
        raise BudgetExceeded(
            f"the query stopped ({result.limit or 'no answer'}) before any answer",
            limit=result.limit,
        )
    return result.answer


def _run_blocking(make: Callable[[], Awaitable[RLMResult]]) -> RLMResult:
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        # Outside the ``except``: errors raised in the query would otherwise carry this
        # RuntimeError as their context, and a provider error reads its cause chain.
        result: RLMResult = anyio.run(make)
        return result
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(anyio.run, make).result()
    return result
