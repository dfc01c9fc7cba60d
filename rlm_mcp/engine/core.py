"""The Recursive Language Model loop.

A query runs as a tree of *levels*. Each level is one root conversation with
its own sandboxed REPL: the model writes code, the engine runs it, and the
code may call ``llm_query`` (a plain sub-model call) or ``rlm_query`` (a new
level, one deeper). Every call anywhere in the tree spends from one
:class:`~rlm_mcp.budget.Budget`, checked before the call is made.

Threads: the event loop runs the conversation and every LLM call. Model code
runs in the sandbox from a worker thread; its host calls (``llm_query`` and
friends) arrive on sandbox threads and are bridged back onto the loop with
``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from rlm_mcp.backends.base import (
    Completion,
    CompletionRequest,
    LLMBackend,
    Message,
    TokenUsage,
    estimate_tokens,
)
from rlm_mcp.budget import Budget, Limits
from rlm_mcp.config import SandboxSettings
from rlm_mcp.engine import prompts
from rlm_mcp.engine.level import Outcome, QueryLevel
from rlm_mcp.engine.replapi import RepositoryLike
from rlm_mcp.engine.result import EvidenceLog, RLMResult
from rlm_mcp.engine.trajectory import TrajectoryWriter
from rlm_mcp.errors import (
    BudgetExceeded,
    LoopDetected,
    RlmMcpError,
    SandboxUnavailable,
    SpendingStopped,
    TimeLimitExceeded,
)
from sandbox import SandboxUnavailableError, Session

__all__ = ["ProgressCallback", "RLMEngine"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

_SUBQUERY_WARN_AT = 3
_SUBQUERY_STOP_AT = 6


class PriceTable(Protocol):
    def cost(self, model: str, usage: TokenUsage) -> Decimal: ...


class _FreePrices:
    def cost(self, model: str, usage: TokenUsage) -> Decimal:
        return Decimal(0)


class RLMEngine:
    """Runs RLM queries over a repository with a root and a (cheaper) sub model.

    Args:
        root: the backend for root turns.
        sub: the backend for ``llm_query``; defaults to ``root``.
        limits: the default guardrails; per-query limits can only tighten them.
        sandbox: limits for the REPL worker processes.
        pricing: prices calls; without it spend is counted as $0.
        trajectory_dir: where JSON Lines trajectories go; ``None`` writes none.
        root_window / sub_window: context windows in tokens, to size prompts.
    """

    def __init__(
        self,
        root: LLMBackend,
        sub: LLMBackend | None = None,
        *,
        limits: Limits | None = None,
        sandbox: SandboxSettings | None = None,
        pricing: PriceTable | None = None,
        trajectory_dir: Path | None = None,
        root_window: int = 128_000,
        sub_window: int = 128_000,
        root_max_output: int | None = None,
        sub_max_output: int | None = None,
        confirm_blind_final: bool = True,
    ) -> None:
        self.root = root
        self.sub = sub or root
        self.limits = limits or Limits()
        self.sandbox = sandbox or SandboxSettings()
        self.pricing: PriceTable = pricing or _FreePrices()
        self.trajectory_dir = trajectory_dir
        self.root_window = root_window
        self.sub_window = sub_window
        self.root_max_output = root_max_output
        self.sub_max_output = sub_max_output
        self.confirm_blind_final = confirm_blind_final

    async def run(
        self,
        question: str,
        repo: RepositoryLike,
        *,
        limits: Limits | None = None,
        progress: ProgressCallback | None = None,
        context: str | None = None,
        context_label: str = "text given with the question",
    ) -> RLMResult:
        """Answer ``question`` about ``repo``; never raises for model or provider failures.

        ``context``, when given, becomes the REPL's ``context`` variable instead
        of the whole repository's text (e.g. a diff to review); ``repo.*`` still
        reaches the whole repository. Cancellation propagates (after the REPL
        workers are killed and in-flight requests cancelled).
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("the question is empty")
        effective = self.limits.tighten(limits)
        query = _Query(self, repo, effective, progress)
        return await query.run(question, context, context_label)


class _Query:
    """State shared by every level of one query."""

    def __init__(
        self,
        engine: RLMEngine,
        repo: RepositoryLike,
        limits: Limits,
        progress: ProgressCallback | None,
    ) -> None:
        self.engine = engine
        self.repo = repo
        self.limits = limits
        self.budget = Budget(limits)
        self.evidence = EvidenceLog()
        self.progress = progress
        self.writer = TrajectoryWriter(engine.trajectory_dir)
        self.loop = asyncio.get_running_loop()
        self.semaphore = asyncio.Semaphore(limits.max_concurrency)
        self.memo: dict[tuple[str, str], asyncio.Future[str]] = {}
        self.subquery_counts: Counter[tuple[str, str]] = Counter()
        self.sub_calls = 0
        self.max_depth_reached = 0
        self.futures: set[concurrent.futures.Future[Any]] = set()
        self.sessions: list[Session] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="rlm-query-")
        self.limit_hit: BudgetExceeded | None = None

    async def run(
        self, question: str, context: str | None = None, context_label: str = ""
    ) -> RLMResult:
        started = time.monotonic()
        self.writer.write(
            "start",
            depth=0,
            question=question,
            limits=self.limits.as_dict(),
            root=str(self.repo.root),
        )
        try:
            level = QueryLevel(
                self, depth=0, question=question, context_text=context, context_label=context_label
            )
            outcome = await level.run()
        except (SandboxUnavailable, SandboxUnavailableError) as exc:
            outcome = Outcome("", "error", error=str(exc))
        except (RlmMcpError, OSError) as exc:
            log.exception("query failed")
            outcome = Outcome("", "error", error=f"{type(exc).__name__}: {exc}")
        except BaseException:
            await self.close()
            self.writer.write("end", depth=0, status="cancelled")
            self.writer.close()
            raise
        await self.close()
        result = RLMResult(
            answer=outcome.answer,
            status=outcome.status,
            limit=outcome.limit,
            error=outcome.error,
            usage=self.budget.usage,
            iterations=outcome.iterations,
            max_depth_reached=self.max_depth_reached,
            sub_calls=self.sub_calls,
            wall_seconds=time.monotonic() - started,
            evidence=self.evidence.merged(),
            trajectory=self.writer.path,
        )
        self.writer.write("end", depth=0, **result.as_dict())
        self.writer.close()
        return result

    async def close(self) -> None:
        for fut in list(self.futures):
            fut.cancel()
        sessions, self.sessions = self.sessions, []
        for session in sessions:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)
        self.tmp.cleanup()

    async def notify(self, event: dict[str, Any]) -> None:
        if self.progress is None:
            return
        try:
            await self.progress({**event, **self.budget.snapshot()})
        except Exception:
            log.debug("progress callback failed", exc_info=True)

    def bridge(self, make: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
        """Turn an async host function into a blocking one for sandbox threads."""

        def call(*args: Any, **kwargs: Any) -> T:
            fut = asyncio.run_coroutine_threadsafe(make(*args, **kwargs), self.loop)
            self.futures.add(fut)
            try:
                return fut.result()
            except concurrent.futures.CancelledError:
                raise RuntimeError("the query was cancelled") from None
            finally:
                self.futures.discard(fut)

        return call

    async def root_call(self, messages: list[Message], *, final: bool = False) -> Completion:
        est = sum(estimate_tokens(m.content) for m in messages)
        self.budget.check_before_call(input_tokens=est, final=final)
        request = CompletionRequest(
            messages=tuple(messages), max_tokens=self.engine.root_max_output, stop=prompts.ROOT_STOP
        )
        if final:
            # The reserved final-answer call may pass max_wall_seconds, but only by a bounded slice.
            allowance = min(120.0, max(15.0, 0.25 * self.limits.max_wall_seconds))
            return await self._complete(self.engine.root, request, deadline=allowance)
        return await self._complete(self.engine.root, request)

    async def _complete(
        self, backend: LLMBackend, request: CompletionRequest, *, deadline: float | None = None
    ) -> Completion:
        """One LLM call, booked on the budget, cut off when the query's time runs out."""
        seconds = self.budget.remaining_seconds if deadline is None else deadline
        try:
            with anyio.fail_after(max(0.001, seconds)):
                completion = await backend.complete(request)
        except TimeoutError:
            self.budget.release()
            exc = TimeLimitExceeded(
                f"the call was cut off at max_wall_seconds={self.limits.max_wall_seconds:g}"
            )
            self._note_limit(exc)
            raise exc from None
        except BaseException:
            self.budget.release()
            raise
        self.budget.record(
            completion.model or backend.model,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cost=self.engine.pricing.cost(completion.model or backend.model, completion.usage),
            estimated=completion.usage.estimated,
        )
        return completion

    def _note_limit(self, exc: BudgetExceeded) -> None:
        if self.limit_hit is None:
            self.limit_hit = exc

    async def sub_call(self, prompt: Any, model: Any, depth: int, level: QueryLevel) -> str:
        if not isinstance(prompt, str):
            raise TypeError(
                f"llm_query expects the prompt as a string, got {type(prompt).__name__}"
            )
        if model is not None and not isinstance(model, str):
            raise TypeError("llm_query's model must be a string or None")
        if not prompt.strip():
            raise ValueError("llm_query got an empty prompt")
        if level.spending_disabled:
            raise SpendingStopped()
        name = model or self.engine.sub.model
        tokens = estimate_tokens(prompt)
        window = self.engine.sub_window
        if tokens > window * 0.9:
            raise ValueError(
                f"the prompt is ~{tokens} tokens, more than the sub-model's window of {window} tokens; "
                "split the text into chunks and use llm_query_batched"
            )
        key = (name, prompt)
        self.subquery_counts[key] += 1
        count = self.subquery_counts[key]
        if count >= _SUBQUERY_STOP_AT:
            exc = LoopDetected(f"the same sub-query was asked {count} times; stopping the loop")
            self._note_limit(exc)
            level.stop_requested = exc
            raise exc
        if count == _SUBQUERY_WARN_AT:
            level.notes.append(
                f"You asked the identical sub-query {count} times; the answer is cached and will "
                "not change. Use the answer you have."
            )
        existing = self.memo.get(key)
        if existing is not None:
            self.budget.record_cache_hit(name)
            answer = await asyncio.shield(existing)
            self.writer.write(
                "sub_call", depth=depth + 1, model=name, prompt=prompt, answer=answer, cached=True
            )
            return answer
        fut: asyncio.Future[str] = self.loop.create_future()
        self.memo[key] = fut
        try:
            async with self.semaphore:
                try:
                    self.budget.check_before_call(input_tokens=tokens)
                except BudgetExceeded as exc:
                    self._note_limit(exc)
                    raise
                completion = await self._complete(
                    self.engine.sub,
                    CompletionRequest(
                        messages=(Message("system", prompts.SUB_SYSTEM), Message("user", prompt)),
                        model=model,
                        max_tokens=self.engine.sub_max_output,
                    ),
                )
        except BaseException as exc:
            del self.memo[key]
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                fut.exception()
            raise
        fut.set_result(completion.text)
        self.sub_calls += 1
        self.max_depth_reached = max(self.max_depth_reached, depth)
        self.writer.write(
            "sub_call",
            depth=depth + 1,
            model=completion.model,
            prompt=prompt,
            answer=completion.text,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cached=False,
        )
        await self.notify({"kind": "sub_call", "depth": depth + 1, "sub_calls": self.sub_calls})
        return completion.text

    async def batched(self, prompts_: Any, model: Any, depth: int, level: QueryLevel) -> list[str]:
        if isinstance(prompts_, str) or not isinstance(prompts_, list | tuple):
            raise TypeError("llm_query_batched expects a list of prompt strings")
        if not prompts_:
            return []
        name = model or self.engine.sub.model
        fresh = {p for p in prompts_ if isinstance(p, str) and (name, p) not in self.memo}
        if fresh:
            avg = sum(estimate_tokens(p) for p in fresh) // len(fresh)
            try:
                self.budget.check_before_call(count=len(fresh), input_tokens=avg)
            except BudgetExceeded as exc:
                self._note_limit(exc)
                raise type(exc)(
                    f"{exc} — the batch of {len(prompts_)} prompts ({len(fresh)} new) was not sent; "
                    "send fewer, larger prompts",
                    limit=exc.limit,
                ) from None
            self.budget.release(len(fresh))
        return list(
            await asyncio.gather(*(self.sub_call(p, model, depth, level) for p in prompts_))
        )

    async def child(self, prompt: Any, context: Any, depth: int) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("rlm_query expects a non-empty prompt string")
        if context is not None and not isinstance(context, str):
            context = str(context)
        try:
            self.budget.check_depth(depth + 1)
        except BudgetExceeded as exc:
            self._note_limit(exc)
            raise
        self.max_depth_reached = max(self.max_depth_reached, depth + 1)
        self.writer.write("start", depth=depth + 1, question=prompt)
        level = QueryLevel(
            self,
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
