"""The calling machinery of one query: every LLM call of every level goes through here.

:class:`QueryRun` holds what a whole recursion tree shares: the budget (checked
before each call), memoised sub-calls, sub-query loop detection, the
trajectory writer, progress, the sandbox sessions to close and every sub-call
task still running (cancelled, and waited for, when the query ends, so no
request outlives the query that paid for it). It sits below
:mod:`rlm_mcp.engine.level`: a level passes its :class:`LevelSignals`, and the
machinery reports back through them (a note for the model, a stop request)
instead of reaching into the level. Nested levels are started through the
``spawn`` function the engine wires in, so nothing here imports the level.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from rlm_mcp.backends.base import (
    Attempt,
    Completion,
    CompletionRequest,
    LLMBackend,
    Message,
    estimate_tokens,
)
from rlm_mcp.budget import Budget, CallUsage, Limits, PriceTable
from rlm_mcp.config import DEFAULT_CONTEXT_WINDOW
from rlm_mcp.engine import prompts
from rlm_mcp.engine.progress import ProgressCallback, ProgressEvent, ProgressKind
from rlm_mcp.engine.replapi import RepositoryLike
from rlm_mcp.engine.result import EvidenceLog
from rlm_mcp.engine.trajectory import TrajectoryWriter
from rlm_mcp.errors import (
    BackendError,
    BudgetExceeded,
    LoopDetected,
    SpendingStopped,
    TimeLimitExceeded,
    TimeLimitWhileRateLimited,
)
from sandbox import Session

__all__ = ["EngineConfig", "LevelSignals", "ModelSpec", "ProgressCallback", "QueryRun"]

log = logging.getLogger(__name__)

Spawn = Callable[[str, str | None, int], Awaitable[str]]
T = TypeVar("T")

_SUBQUERY_WARN_AT = 3
_SUBQUERY_STOP_AT = 6
# How long closing a query waits for cancelled sub-calls to unwind (they close
# their HTTP requests at once; this only bounds a misbehaving backend).
_CANCEL_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as the engine uses it: the backend that calls it and the sizes prompts fit.

    Attributes:
        context_window: the model's window in tokens; prompts are sized to it.
        max_output_tokens: the cap on each reply; ``None`` leaves the provider's default.
    """

    backend: LLMBackend
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_output_tokens: int | None = None

    @property
    def model(self) -> str:
        return self.backend.model


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a query's root and sub calls sample, passed through to the provider.

    Attributes:
        temperature: ``None`` leaves each endpoint's own setting.
        seed: reproducible sampling where the provider supports it.
    """

    temperature: float | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the calling machinery needs from the engine: the two models and the prices."""

    root: ModelSpec
    sub: ModelSpec
    pricing: PriceTable | None = None

    @property
    def sub_models(self) -> frozenset[str]:
        """The models ``llm_query(model=...)`` may name."""
        return frozenset({self.root.model, self.sub.model})


@dataclass(slots=True)
class LevelSignals:
    """How the machinery talks back to one level: notes for the model, a stop request."""

    spending_disabled: bool = False
    stop_requested: BudgetExceeded | None = None
    notes: list[str] = field(default_factory=list)


class QueryRun:
    """State and calls shared by every level of one query."""

    def __init__(
        self,
        engine: EngineConfig,
        repo: RepositoryLike,
        limits: Limits,
        progress: ProgressCallback | None,
        trajectory: TrajectoryWriter,
        sampling: Sampling | None = None,
    ) -> None:
        self.engine = engine
        self.sampling = sampling or Sampling()
        self.in_flight: dict[object, tuple[str, float]] = {}
        self.last_report = time.monotonic()
        self.repo = repo
        self.limits = limits
        self.budget = Budget(limits, prices=engine.pricing)
        self.evidence = EvidenceLog()
        self.progress = progress
        self.writer = trajectory
        self.loop = asyncio.get_running_loop()
        self.semaphore = asyncio.Semaphore(limits.max_concurrency)
        self.memo: dict[tuple[str, str], asyncio.Future[str]] = {}
        self.subquery_counts: Counter[tuple[str, str]] = Counter()
        self.sub_calls = 0
        self.max_depth_reached = 0
        self.futures: set[concurrent.futures.Future[Any]] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.sessions: list[Session] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="rlm-query-")
        self.limit_hit: BudgetExceeded | None = None
        self.rate_limited: TimeLimitWhileRateLimited | None = None
        self.spawn: Spawn | None = None

    async def close(self) -> None:
        """End the query: no new host calls, every call in flight cancelled and unwound.

        Sub-calls run in tasks of their own (bridged from sandbox threads,
        or a batch's siblings), outside the query's cancel scope, so they are
        cancelled here and awaited: their HTTP requests are closed before
        the query's result is returned. Then the REPL workers are stopped.
        """
        self.closed = True
        for fut in list(self.futures):
            fut.cancel()
        await self._cancel_tasks()
        sessions, self.sessions = self.sessions, []
        for session in sessions:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)
        self.tmp.cleanup()

    async def heartbeats(self, every: float) -> None:
        """Report at least every ``every`` seconds, naming the calls in flight (a task)."""
        while True:
            await anyio.sleep(max(0.01, every - (time.monotonic() - self.last_report)))
            if time.monotonic() - self.last_report >= every:
                now = time.monotonic()
                waiting = ", ".join(
                    f"{model} {now - started:.1f} s" for model, started in self.in_flight.values()
                )
                await self.notify("heartbeat", 0, waiting_on=waiting or "the REPL or the index")

    async def notify(
        self,
        kind: ProgressKind,
        depth: int,
        iteration: int = 0,
        max_iterations: int = 0,
        *,
        waiting_on: str = "",
    ) -> None:
        if self.progress is None:
            return
        self.last_report = time.monotonic()
        try:
            spend = self.budget.snapshot()
            await self.progress(
                ProgressEvent(
                    kind,
                    depth,
                    calls=spend["calls"],
                    attempts=spend["attempts"],
                    tokens=spend["tokens"],
                    cost_usd=spend["cost_usd"],
                    elapsed_seconds=spend["elapsed_seconds"],
                    sub_calls=self.sub_calls,
                    iteration=iteration,
                    max_iterations=max_iterations,
                    waiting_on=waiting_on,
                )
            )
        except Exception:
            log.debug("progress callback failed", exc_info=True)

    async def _cancel_tasks(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_GRACE_SECONDS):
            while self.tasks:
                pending = list(self.tasks)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        if self.tasks:
            log.warning("%d sub-call(s) did not stop after being cancelled", len(self.tasks))

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task the query tracks, so :meth:`close` can cancel it."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _tracked(
        self,
        make: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        """Run a bridged host call in this (loop-side) task, tracked like a spawned one.

        The call's coroutine is made here, not in the sandbox thread, so a call
        cancelled before it starts leaves no coroutine unawaited.
        """
        if self.closed:
            raise RuntimeError("the query has ended")
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            return await make(*args, **kwargs)
        finally:
            self.tasks.discard(task)

    def bridge(self, make: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
        """Turn an async host function into a blocking one for sandbox threads."""

        def call(*args: Any, **kwargs: Any) -> T:
            if self.closed:
                raise RuntimeError("the query has ended")
            fut = asyncio.run_coroutine_threadsafe(self._tracked(make, args, kwargs), self.loop)
            self.futures.add(fut)
            try:
                return fut.result()
            except concurrent.futures.CancelledError:
                raise RuntimeError("the query was cancelled") from None
            finally:
                self.futures.discard(fut)

        return call

    def usage_fields(self, completion: Completion) -> dict[str, Any]:
        """A call's tokens and cost as its trajectory event records them (the viewer's
        per-node figures); ``cost_usd`` is omitted for a model without a price."""
        usage = completion.usage
        out: dict[str, Any] = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        }
        model = completion.model or ""
        if model and self.budget.prices.is_priced(model):
            out["cost_usd"] = str(self.budget.prices.cost(model, usage))
        return out

    async def root_call(self, messages: list[Message], *, final: bool = False) -> Completion:
        est = sum(estimate_tokens(m.content) for m in messages)
        seconds = self.budget.check_before_call(input_tokens=est, final=final)
        root = self.engine.root
        request = CompletionRequest(
            messages=tuple(messages),
            max_tokens=root.max_output_tokens,
            temperature=self.sampling.temperature,
            seed=self.sampling.seed,
            stop=prompts.ROOT_STOP,
        )
        if final:
            # The reserved final-answer call may pass max_wall_seconds, but only by a bounded slice.
            seconds = min(120.0, max(15.0, 0.25 * self.limits.max_wall_seconds))
        return await self._complete(root.backend, request, seconds)

    async def _complete(
        self, backend: LLMBackend, request: CompletionRequest, seconds: float
    ) -> Completion:
        """One LLM call that passed the budget's check, cut off after ``seconds``; then booked.

        Every attempt the backend makes is booked, whether the call answers,
        fails, is cut off or is cancelled: retries are spend too.
        """
        model = request.model or backend.model
        attempts: list[Attempt] = []
        request = dataclasses.replace(request, on_attempt=attempts.append)
        token = object()
        self.in_flight[token] = (model, time.monotonic())
        try:
            with anyio.fail_after(max(0.001, seconds)):
                completion = await backend.complete(request)
        except TimeoutError:
            self.budget.book(CallUsage(model, attempts=tuple(attempts)))
            exc = self._cut_off(model, attempts)
            self.note_limit(exc)
            raise exc from None
        except BaseException as error:
            if not attempts and isinstance(error, BackendError):
                attempts = [Attempt(model, "failed", kind=error.kind)]
            self.budget.book(CallUsage(model, attempts=tuple(attempts)))
            raise
        finally:
            self.in_flight.pop(token, None)
        self.budget.book(
            CallUsage(
                completion.model or backend.model,
                answer=completion.usage,
                attempts=tuple(attempts),
                reported_attempts=completion.attempts,
            )
        )
        return completion

    def _cut_off(self, model: str, attempts: list[Attempt]) -> TimeLimitExceeded:
        """The error for a call the query's clock cut off: rate-limited, if that is why."""
        wall = self.limits.max_wall_seconds
        last = attempts[-1] if attempts else None
        if last is None or last.outcome != "failed" or last.kind != "rate_limited":
            return TimeLimitExceeded(f"the call was cut off at max_wall_seconds={wall:g}")
        asked = f", Retry-After {last.retry_after:g}s" if last.retry_after is not None else ""
        tries = "1 attempt" if len(attempts) == 1 else f"{len(attempts)} attempts"
        exc = TimeLimitWhileRateLimited(
            f"max_wall_seconds={wall:g} ran out while waiting on the provider's rate limit: "
            f"model {model} answered HTTP 429{asked} ({tries}); the provider, not the "
            "question, used the time"
        )
        if self.rate_limited is None:
            self.rate_limited = exc
        return exc

    def limit_kind(self, limit: str | None) -> str | None:
        """What was behind a limit, when a provider was: ``rate_limited`` or ``None``.

        ``max_wall_seconds`` reached while a call waited on HTTP 429 is the
        provider's rate limit as much as the clock; a result says both.
        """
        hit = self.rate_limited
        return hit.kind if hit is not None and limit == hit.limit else None

    def note_limit(self, exc: BudgetExceeded) -> None:
        if self.limit_hit is None:
            self.limit_hit = exc

    async def sub_call(self, prompt: Any, model: Any, depth: int, level: LevelSignals) -> str:
        if not isinstance(prompt, str):
            raise TypeError(
                f"llm_query expects the prompt as a string, got {type(prompt).__name__}"
            )
        if model is not None and not isinstance(model, str):
            raise TypeError("llm_query's model must be a string or None")
        if model is not None and model not in self.engine.sub_models:
            allowed = ", ".join(sorted(self.engine.sub_models))
            raise ValueError(
                f"llm_query(model={model!r}): only the configured models may be called "
                f"({allowed}); leave model out to use the sub-model"
            )
        if not prompt.strip():
            raise ValueError("llm_query got an empty prompt")
        if level.spending_disabled:
            raise SpendingStopped()
        name = model or self.engine.sub.model
        tokens = estimate_tokens(prompt)
        window = self.engine.sub.context_window
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
            self.note_limit(exc)
            level.stop_requested = exc
            raise exc
        if count == _SUBQUERY_WARN_AT:
            level.notes.append(
                f"You asked the identical sub-query {count} times; the answer is cached and will "
                "not change. Use the answer you have."
            )
        existing = self.memo.get(key)
        if existing is not None:
            self.budget.book_cache_hit(name)
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
                    seconds = self.budget.check_before_call(input_tokens=tokens)
                except BudgetExceeded as exc:
                    self.note_limit(exc)
                    raise
                completion = await self._complete(
                    self.engine.sub.backend,
                    CompletionRequest(
                        messages=(Message("system", prompts.SUB_SYSTEM), Message("user", prompt)),
                        model=model,
                        max_tokens=self.engine.sub.max_output_tokens,
                        temperature=self.sampling.temperature,
                        seed=self.sampling.seed,
                    ),
                    seconds,
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
            cached=False,
            **self.usage_fields(completion),
        )
        await self.notify("sub_call", depth + 1)
        return completion.text

    async def batched(
        self, prompts_: Any, model: Any, depth: int, level: LevelSignals
    ) -> list[str]:
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
                self.note_limit(exc)
                raise type(exc)(
                    f"{exc} — the batch of {len(prompts_)} prompts ({len(fresh)} new) was not sent; "
                    "send fewer, larger prompts",
                    limit=exc.limit,
                ) from None
            self.budget.release(len(fresh))
        tasks = [self._spawn(self.sub_call(p, model, depth, level)) for p in prompts_]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            await _cancel_and_wait(tasks)
        errors = [t.exception() for t in tasks if not t.cancelled()]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return [t.result() for t in tasks]

    async def child(self, prompt: Any, context: Any, depth: int) -> str:
        """``rlm_query`` from model code at ``depth``: a nested level, started by the engine."""
        if self.spawn is None:
            raise RuntimeError("rlm_query is not available here")
        return await self.spawn(prompt, context, depth)


async def _cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel the unfinished ``tasks`` and wait until they have unwound.

    A batch is all or nothing: once one prompt fails the others are wasted
    spend, and model code gets the first error rather than a half-done list.
    """
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
