"""The Recursive Language Model loop.

A query runs as a tree of *levels*. Each level is one root conversation with
its own sandboxed REPL: the model writes code, the engine runs it, and the
code may call ``llm_query`` (a plain sub-model call) or ``rlm_query`` (a new
level, one deeper). Every call anywhere in the tree spends from one
:class:`~rlm_mcp.budget.Budget`, checked before the call is made.

Modules, bottom to top: :mod:`~rlm_mcp.engine.calls` (the budgeted calling
machinery one query shares), :mod:`~rlm_mcp.engine.level` (one conversation
and its REPL), and this one, which wires them: it starts the top level and
gives the machinery the function that starts nested ones.

Threads: the event loop runs the conversation and every LLM call. Model code
runs in the sandbox from a worker thread; its host calls (``llm_query`` and
friends) arrive on sandbox threads and are bridged back onto the loop with
``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp import tracing
from rlm_mcp.budget import Limits, PriceTable
from rlm_mcp.config import SandboxSettings
from rlm_mcp.engine.calls import EngineConfig, ModelSpec, ProgressCallback, QueryRun, Sampling
from rlm_mcp.engine.compaction import compact
from rlm_mcp.engine.conversation import Conversation
from rlm_mcp.engine.level import QueryLevel
from rlm_mcp.engine.progress import HEARTBEAT_SECONDS
from rlm_mcp.engine.replapi import RepositoryLike
from rlm_mcp.engine.result import Candidate, Outcome, RLMResult
from rlm_mcp.engine.trajectory import TrajectoryWriter
from rlm_mcp.errors import (
    BackendError,
    BudgetExceeded,
    ConfigError,
    RlmMcpError,
    SandboxUnavailable,
    SessionNotFound,
    TimeLimitWhileRateLimited,
)

__all__ = ["EngineOptions", "ModelSpec", "ProgressCallback", "RLMEngine"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the engine runs a query, besides its models and guardrails.

    Attributes:
        pricing: prices calls; ``None`` leaves every model unpriced ($0).
        confirm_blind_final: a first turn that sets the answer in code whose
            output the model never saw is asked to confirm it.
        scout: ranked search on the question before the first root call.
        functions: the caller's own REPL functions by name (trusted host code,
            called through the sandbox's bounded host-call path; see
            :func:`~rlm_mcp.engine.hostfns.caller_functions`).
        heartbeat_seconds: with a progress callback, a query reports at least
            this often (a ``heartbeat`` naming the calls in flight).
        strategy: how a query starts: ``explore``, ``locate-first`` or
            ``locate-only`` (see :mod:`~rlm_mcp.engine.strategy`).
    """

    pricing: PriceTable | None = None
    confirm_blind_final: bool = True
    scout: bool = True
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    strategy: str = "explore"


class RLMEngine:
    """Runs RLM queries over a repository with a root and a (cheaper) sub model.

    Build one from settings with :func:`rlm_mcp.engine.build.build_engine`.

    Args:
        root: the model for root turns.
        sub: the model for ``llm_query``; defaults to ``root``.
        limits: the default guardrails; per-query limits can only tighten them.
        sandbox: limits for the REPL worker processes.
        options: pricing, scouting and the blind-final check.
        trajectory_dir: where JSON Lines trajectories go; ``None`` writes none.
    """

    def __init__(
        self,
        root: ModelSpec,
        sub: ModelSpec | None = None,
        *,
        limits: Limits | None = None,
        sandbox: SandboxSettings | None = None,
        options: EngineOptions | None = None,
        trajectory_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.sub = sub or root
        self.limits = limits or Limits()
        self.sandbox = sandbox or SandboxSettings()
        self.options = options or EngineOptions()
        self.trajectory_dir = trajectory_dir
        self.calls = EngineConfig(root=self.root, sub=self.sub, pricing=self.options.pricing)

    async def run(
        self,
        question: str,
        repo: RepositoryLike,
        *,
        limits: Limits | Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        context: str | None = None,
        context_label: str = "text given with the question",
        conversation: Conversation | None = None,
        sampling: Sampling | None = None,
    ) -> RLMResult:
        """Answer ``question`` about ``repo``; never raises for model or provider failures.

        ``limits`` (a :class:`Limits` or loose values, as a tool call gives
        them) can only tighten the engine's. ``context``, when given, becomes
        the REPL's ``context`` variable instead of the whole repository's text
        (e.g. a diff to review); ``repo.*`` still reaches the whole repository.
        Cancellation propagates (after the REPL workers are killed and
        in-flight requests cancelled).

        ``conversation`` continues a session: the top level runs in its REPL, its
        first message recalls the earlier turns (compacted by the sub model when
        they outgrow their share of the window), and the turn is recorded after.
        ``sampling`` (temperature, seed) goes to every root and sub call.

        Raises:
            ConfigError: the question is empty, or a limit is malformed. This is
                the one place requests are validated; the service and the
                library pass them through.
        """
        if not isinstance(question, str) or not question.strip():
            raise ConfigError("the question is empty: pass the question to answer")
        effective = self.limits.tighten(limits)
        if conversation is not None and conversation.closed:
            raise SessionNotFound(
                "the session ended while this query waited for it; start a new session",
                kind="session_expired",
            )
        run = QueryRun(
            self.calls,
            repo,
            effective,
            progress,
            TrajectoryWriter(self.trajectory_dir),
            sampling,
        )

        async def spawn(prompt: str, ctx: str | None, depth: int) -> str:
            return await self._child(run, prompt, ctx, depth)

        run.spawn = spawn
        if progress is None:
            return await self._converse(run, question, context, context_label, conversation)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.heartbeats, self.options.heartbeat_seconds)
            try:
                result = await self._converse(run, question, context, context_label, conversation)
            finally:
                tg.cancel_scope.cancel()
        return result

    async def _converse(
        self,
        run: QueryRun,
        question: str,
        context: str | None,
        context_label: str,
        conversation: Conversation | None,
    ) -> RLMResult:
        if conversation is None:
            return await self._top(run, question, context, context_label, None)
        if conversation.needs_compaction(self.root.context_window):
            await compact(run, conversation)
        result = await self._top(run, question, context, context_label, conversation)
        conversation.record(question, result.answer, result.status)
        return result

    def _level(self, run: QueryRun, **kwargs: Any) -> QueryLevel:
        return QueryLevel(
            run,
            sandbox=self.sandbox,
            confirm_blind_final=self.options.confirm_blind_final,
            scout=self.options.scout,
            functions=self.options.functions,
            **kwargs,
        )

    async def _top(
        self,
        run: QueryRun,
        question: str,
        context: str | None,
        context_label: str,
        conversation: Conversation | None,
    ) -> RLMResult:
        started = time.monotonic()
        trace = tracing.current()
        run.writer.write(
            "start",
            depth=0,
            question=question,
            limits=run.limits.as_dict(),
            root=str(run.repo.root),
            **({"trace": trace.as_dict()} if trace is not None else {}),
        )
        level = self._level(
            run,
            depth=0,
            question=question,
            context_text=context,
            context_label=context_label,
            conversation=conversation,
            strategy=self.options.strategy,
        )
        try:
            outcome = await level.run()
        except SandboxUnavailable as exc:
            outcome = Outcome("", "error", error=str(exc))
        except (RlmMcpError, OSError) as exc:
            log.exception("query failed")
            outcome = Outcome(
                "",
                "error",
                error=f"{type(exc).__name__}: {exc}",
                error_kind=_kind(exc),
            )
        except BaseException:
            await run.close()
            run.writer.write("end", depth=0, status="cancelled")
            run.writer.close()
            raise
        await run.close()
        answer = outcome.answer
        if outcome.status != "completed" and level.candidates:
            answer = _with_locations(answer, outcome, level.candidates)
        result = RLMResult(
            answer=answer,
            status=outcome.status,
            limit=outcome.limit,
            error=outcome.error,
            usage=run.budget.usage,
            iterations=outcome.iterations,
            max_depth_reached=run.max_depth_reached,
            sub_calls=run.sub_calls,
            wall_seconds=time.monotonic() - started,
            evidence=run.evidence.merged(),
            trajectory=run.writer.path,
            candidates=list(level.candidates),
            located=list(level.located),
            citations=outcome.citations,
            error_kind=outcome.error_kind,
        )
        run.writer.write("end", depth=0, **result.as_dict())
        run.writer.close()
        return result

    async def _child(self, run: QueryRun, prompt: Any, context: Any, depth: int) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("rlm_query expects a non-empty prompt string")
        if context is not None and not isinstance(context, str):
            context = str(context)
        try:
            run.budget.check_depth(depth + 1)
        except BudgetExceeded as exc:
            run.note_limit(exc)
            raise
        run.max_depth_reached = max(run.max_depth_reached, depth + 1)
        run.writer.write("start", depth=depth + 1, question=prompt)
        level = self._level(
            run,
            depth=depth + 1,
            question=prompt,
            context_text=context,
            context_label="text from the parent query",
        )
        outcome = await level.run()
        if outcome.status == "completed":
            return outcome.answer
        if outcome.answer:
            return f"{outcome.answer}\n[note: the nested query stopped early: {outcome.limit or outcome.error}]"
        raise RuntimeError(
            f"the nested rlm_query produced no answer ({outcome.limit or outcome.error})"
        )


def _kind(exc: BaseException) -> str | None:
    """How a provider failed, when one is why the query failed."""
    return exc.kind if isinstance(exc, BackendError | TimeLimitWhileRateLimited) else None


def _with_locations(answer: str, outcome: Outcome, candidates: list[Candidate]) -> str:
    """What ranked search found, then the model's unconfirmed partial answer, if any.

    Never less than a search: the locations come first because the partial answer
    never went through FINAL and was never checked against the index.
    """
    why = outcome.limit or (outcome.error or "no final answer").split("\n", 1)[0]
    lines = "\n".join(f"- {c}" for c in candidates)
    text = (
        f"[The query ended without a complete answer ({why}). Ranked search (no LLM) "
        f"found these locations for the question:]\n{lines}"
    )
    if answer.strip():
        text += f"\n\n[The model's unconfirmed partial answer:]\n{answer.strip()}"
    return text
