"""The library face: an RLM that behaves like a model call — a string in, an answer out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp.backends import LLMBackend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings, Settings
from rlm_mcp.engine.build import build_engine
from rlm_mcp.engine.core import ProgressCallback, RLMEngine
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.errors import BackendError, BudgetExceeded, RepositoryNotFound
from rlm_mcp.index import Repository
from rlm_mcp.index.repository import load

__all__ = ["RLM"]


class RLM:
    """A Recursive Language Model over a repository, a file or a long text.

    Example:
        >>> rlm = RLM(ModelEndpoint("gpt-4.1-mini"), sub=ModelEndpoint("gpt-4.1-nano"))
        >>> rlm.completion("Where is the retry policy configured?", "path/to/repo")

    Args:
        root: the endpoint of the root model (writes the REPL code).
        sub: the endpoint for ``llm_query`` sub-calls; defaults to ``root``.
        limits: guardrails for every query (per-call limits can only tighten them).
        index: how repositories are indexed (cache directory, size caps).
        sandbox: REPL worker limits.
        trajectory_dir: write each query's trajectory as JSON Lines here.
        root_backend / sub_backend: use these backends instead of building
            OpenAI-compatible ones from the endpoints (tests, custom providers).
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
    ) -> None:
        self.root_endpoint = root
        self.sub_endpoint = sub or root
        self._root_backend = root_backend
        self._sub_backend = sub_backend
        self.limits = limits or Limits()
        self.index = index or IndexSettings(watch=False)
        self.sandbox = sandbox or SandboxSettings()
        self.trajectory_dir = trajectory_dir

    def _engine(self) -> tuple[RLMEngine, list[LLMBackend]]:
        settings = Settings(
            sandbox=self.sandbox,
            root_model=self.root_endpoint,
            sub_model=self.sub_endpoint if self.sub_endpoint is not self.root_endpoint else None,
            trajectory_dir=self.trajectory_dir,
        )
        return build_engine(
            settings,
            self.limits,
            root_backend=self._root_backend,
            sub_backend=self._sub_backend,
        )

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
        engine, owned = self._engine()
        tmp: tempfile.TemporaryDirectory[str] | None = None
        repo: Repository | None = None
        try:
            if isinstance(context, Repository):
                target = context
            else:
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
                if path is None:
                    tmp = tempfile.TemporaryDirectory(prefix="rlm-text-")
                    path = Path(tmp.name) / "context.txt"
                    path.write_text(str(context), encoding="utf-8")
                repo = await anyio.to_thread.run_sync(lambda: load(path, self.index))
                target = repo
            return await engine.run(prompt, target, limits=limits, progress=progress)
        finally:
            if repo is not None:
                repo.close()
            if tmp is not None:
                tmp.cleanup()
            for backend in owned:
                await backend.aclose()

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


def _looks_like_path(text: str) -> bool:
    """A short one-line string that reads as a path the user mistyped, not as a text."""
    t = text.strip()
    if not t or " " in t:
        return False
    return "/" in t or "\\" in t or t.startswith("~") or Path(t).suffix != ""


def _answer_or_raise(result: RLMResult) -> str:
    if result.status == "error" and not result.answer.strip():
        raise BackendError(result.error or "the query failed without an answer")
    if result.status == "error":
        raise BackendError(f"{result.error} (partial answer: {result.answer[:200]!r})")
    if not result.answer.strip():
        raise BudgetExceeded(
            f"the query stopped ({result.limit or 'no answer'}) before any answer",
            limit=result.limit,
        )
    return result.answer


def _run_blocking(make: Callable[[], Awaitable[RLMResult]]) -> RLMResult:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result: RLMResult = anyio.run(make)
        return result
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(anyio.run, make).result()
    return result
