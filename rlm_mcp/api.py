"""The library face: an RLM that behaves like a model call — a string in, an answer out."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp.backends import LLMBackend, Pricing, make_backend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings
from rlm_mcp.engine.core import ProgressCallback, RLMEngine
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.index import Repository, load

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
        owned: list[LLMBackend] = []
        root = self._root_backend
        if root is None:
            root = make_backend(self.root_endpoint, role="root")
            owned.append(root)
        sub = self._sub_backend
        if sub is None:
            if self.sub_endpoint is not None and self.sub_endpoint is not self.root_endpoint:
                sub = make_backend(self.sub_endpoint, role="sub")
                owned.append(sub)
            else:
                sub = root
        r, s = self.root_endpoint, self.sub_endpoint
        engine = RLMEngine(
            root,
            sub,
            limits=self.limits,
            sandbox=self.sandbox,
            pricing=Pricing(),
            trajectory_dir=self.trajectory_dir,
            root_window=r.context_window if r else 128_000,
            sub_window=s.context_window if s else 128_000,
            root_max_output=r.max_output_tokens if r else None,
            sub_max_output=s.max_output_tokens if s else None,
        )
        return engine, owned

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
                    path = candidate if candidate.exists() else None
                if path is None:
                    tmp = tempfile.TemporaryDirectory(prefix="rlm-text-")
                    path = Path(tmp.name) / "context.txt"
                    path.write_text(str(context), encoding="utf-8")
                repo = await anyio.to_thread.run_sync(lambda: load(path, self.index))
                target = repo
            tightened = self.limits.tighten(limits) if limits is not None else self.limits
            return await engine.run(prompt, target, limits=tightened, progress=progress)
        finally:
            if repo is not None:
                repo.close()
            if tmp is not None:
                tmp.cleanup()
            for backend in owned:
                await backend.aclose()

    async def acompletion(self, prompt: str, context: str | Path | Repository) -> str:
        """Like :meth:`aquery` but returns only the answer text."""
        return (await self.aquery(prompt, context)).answer

    def query(self, prompt: str, context: str | Path | Repository, **kwargs: Any) -> RLMResult:
        """Blocking :meth:`aquery` (do not call from inside a running event loop)."""
        return anyio.run(lambda: self.aquery(prompt, context, **kwargs))

    def completion(self, prompt: str, context: str | Path | Repository) -> str:
        """Blocking: a string in, an answer out — the drop-in for a plain model call."""
        return self.query(prompt, context).answer
