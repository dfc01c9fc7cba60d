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
import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from functools import partial
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
from rlm_mcp.engine.parsing import extract_code_blocks, mentions_final_in_prose, normalize_code
from rlm_mcp.engine.replapi import PRELUDE, RESERVED, RepositoryLike, repo_functions
from rlm_mcp.engine.result import EvidenceLog, RLMResult
from rlm_mcp.engine.trajectory import TrajectoryWriter
from rlm_mcp.errors import (
    BackendError,
    BudgetExceeded,
    IterationLimitExceeded,
    RlmMcpError,
    SandboxUnavailable,
)
from sandbox import ExecResult, SandboxUnavailableError, Session, SessionConfig

__all__ = ["ProgressCallback", "RLMEngine"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

_CONTEXT_NAME = re.compile(r"\bcontext\b")
_LOOP_WARN_AT = 2
_LOOP_STOP_AT = 3
_SUBQUERY_WARN_AT = 3
_SUBQUERY_STOP_AT = 6


class PriceTable(Protocol):
    def cost(self, model: str, usage: TokenUsage) -> Decimal: ...


class _FreePrices:
    def cost(self, model: str, usage: TokenUsage) -> Decimal:
        return Decimal(0)


class LoopDetected(BudgetExceeded):
    limit = "loop_detected"


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

    async def run(
        self,
        question: str,
        repo: RepositoryLike,
        *,
        limits: Limits | None = None,
        progress: ProgressCallback | None = None,
    ) -> RLMResult:
        """Answer ``question`` about ``repo``; never raises for model or provider failures.

        Cancellation propagates (after the REPL workers are killed and
        in-flight requests cancelled).
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("the question is empty")
        effective = self.limits.tighten(limits)
        query = _Query(self, repo, effective, progress)
        return await query.run(question)


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

    async def run(self, question: str) -> RLMResult:
        started = time.monotonic()
        self.writer.write(
            "start",
            depth=0,
            question=question,
            limits=self.limits.as_dict(),
            root=str(self.repo.root),
        )
        try:
            level = _Level(self, depth=0, question=question, context_text=None)
            outcome = await level.run()
        except (SandboxUnavailable, SandboxUnavailableError) as exc:
            outcome = _Outcome("", "error", error=str(exc))
        except (RlmMcpError, OSError) as exc:
            log.exception("query failed")
            outcome = _Outcome("", "error", error=f"{type(exc).__name__}: {exc}")
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
        return await self._complete(
            self.engine.root,
            CompletionRequest(messages=tuple(messages), max_tokens=self.engine.root_max_output),
        )

    async def _complete(self, backend: LLMBackend, request: CompletionRequest) -> Completion:
        try:
            completion = await backend.complete(request)
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

    async def sub_call(self, prompt: Any, model: Any, depth: int, level: _Level) -> str:
        if not isinstance(prompt, str):
            raise TypeError(
                f"llm_query expects the prompt as a string, got {type(prompt).__name__}"
            )
        if model is not None and not isinstance(model, str):
            raise TypeError("llm_query's model must be a string or None")
        if not prompt.strip():
            raise ValueError("llm_query got an empty prompt")
        if level.spending_disabled:
            raise CallLimitExceededInFinal()
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

    async def batched(self, prompts_: Any, model: Any, depth: int, level: _Level) -> list[str]:
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
        level = _Level(self, depth=depth + 1, question=prompt, context_text=context)
        outcome = await level.run()
        if outcome.status == "completed":
            return outcome.answer
        if outcome.answer:
            return f"{outcome.answer}\n[note: the nested query stopped early: {outcome.limit or outcome.error}]"
        raise RuntimeError(
            f"the nested rlm_query produced no answer ({outcome.limit or outcome.error})"
        )


class CallLimitExceededInFinal(BudgetExceeded):
    """Sub-calls are off while the root writes its final answer."""

    limit = "final_answer"

    def __init__(self) -> None:
        super().__init__("no more sub-calls: the budget is spent; answer from what you have")


class _Outcome:
    __slots__ = ("answer", "error", "iterations", "limit", "status")

    def __init__(
        self,
        answer: str,
        status: Any,
        *,
        limit: str | None = None,
        error: str | None = None,
        iterations: int = 0,
    ) -> None:
        self.answer = answer
        self.status = status
        self.limit = limit
        self.error = error
        self.iterations = iterations


class _Level:
    """One root conversation with its own REPL, at a given depth."""

    def __init__(
        self, query: _Query, *, depth: int, question: str, context_text: str | None
    ) -> None:
        self.q = query
        self.depth = depth
        self.question = question
        self.context_text = context_text
        self.context_path = Path(query.tmp.name) / f"context-{depth}-{id(self)}.txt"
        self.context_built = context_text is not None
        self.spending_disabled = False
        self.stop_requested: BudgetExceeded | None = None
        self.notes: list[str] = []
        self.session: Session | None = None
        self.last_output = ""
        self.partial = ""
        out_limit = min(
            self.q.engine.sandbox.output_limit_chars, max(2_000, self.q.engine.root_window)
        )
        self.output_limit = out_limit

    # -- sandbox -------------------------------------------------------------------------

    async def _start_session(self) -> Session:
        if self.context_text is not None:
            self.context_path.write_text(self.context_text, encoding="utf-8")
        else:
            self.context_path.touch()
        q = self.q
        d = self.depth
        host: dict[str, Callable[..., Any]] = dict(repo_functions(q.repo, q.evidence))
        host["llm_query"] = q.bridge(lambda prompt, model=None: q.sub_call(prompt, model, d, self))
        host["llm_query_batched"] = q.bridge(
            lambda prompts_, model=None: q.batched(prompts_, model, d, self)
        )
        host["rlm_query"] = q.bridge(lambda prompt, context=None: q.child(prompt, context, d))
        sb = q.engine.sandbox
        config = SessionConfig(
            root=q.repo.root if q.repo.root.is_dir() else q.repo.root.parent,
            readable_paths=(self.context_path,),
            lazy_text={"context": self.context_path},
            prelude=PRELUDE,
            reserved=RESERVED,
            exec_timeout=q.limits.exec_timeout_seconds,
            output_limit=self.output_limit,
            memory_bytes=sb.memory_mb * 1024 * 1024 if sb.memory_mb else None,
            cpu_seconds=sb.cpu_seconds,
            allow_unsafe=sb.allow_unsafe,
        )
        session = Session(config, host)
        q.sessions.append(session)
        await anyio.to_thread.run_sync(session.start)
        return session

    def _build_context(self) -> None:
        """Write the whole repository as one text, once, when code first mentions ``context``."""
        if self.context_built:
            return
        self.context_built = True
        with self.context_path.open("w", encoding="utf-8") as fh:
            for path in self.q.repo.files():
                try:
                    text = self.q.repo.text(path)
                except RlmMcpError:
                    continue
                fh.write(f"=== {path} ===\n")
                fh.write(text)
                if not text.endswith("\n"):
                    fh.write("\n")

    async def _exec(self, code: str) -> ExecResult:
        assert self.session is not None
        if not self.context_built and _CONTEXT_NAME.search(code):
            await anyio.to_thread.run_sync(self._build_context)
        session = self.session
        try:
            return await anyio.to_thread.run_sync(
                partial(session.exec, code), abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            session.interrupt()
            raise

    async def _answer(self) -> tuple[bool, str]:
        assert self.session is not None
        value = await anyio.to_thread.run_sync(self.session.get, "answer")
        if isinstance(value, dict):
            content = value.get("content")
            text = (
                content if isinstance(content, str) else ("" if content is None else str(content))
            )
            if text:
                self.partial = text
            return bool(value.get("ready")) and bool(text.strip()), text
        return False, ""

    # -- the loop ------------------------------------------------------------------------

    def _shape(self) -> str:
        repo = self.q.repo
        if self.context_text is not None:
            return (
                f"A parent query gave you a `context` string of {len(self.context_text):,} characters "
                f"(~{estimate_tokens(self.context_text):,} tokens). The repository functions below "
                f"also work, on the repository at {repo.root.name}."
            )
        report = getattr(repo, "report", None)
        files = getattr(report, "files", None)
        tokens = getattr(report, "tokens", None)
        langs = getattr(report, "languages", {}) or {}
        lang_text = ", ".join(
            f"{k} ({v})" for k, v in sorted(langs.items(), key=lambda kv: -kv[1])[:12]
        )
        try:
            layout = repo.layout(2)
        except Exception:
            layout = ""
        lines = layout.splitlines()
        if len(lines) > 40:
            layout = (
                "\n".join(lines[:40]) + f"\n... ({len(lines) - 40} more lines: call repo.layout())"
            )
        return (
            f"Name: {repo.root.name}\nFiles: {files}\nSize: ~{tokens} tokens\n"
            f"Languages: {lang_text or 'unknown'}\nTop-level layout (file counts):\n{layout}"
        )

    def _system_prompt(self) -> str:
        lim = self.q.limits
        functions = "\n".join(
            f"- {sig}: {doc.format(sub_window=self.q.engine.sub_window)}"
            for sig, doc in prompts.REPL_FUNCTIONS
        )
        tokens = (
            estimate_tokens(self.context_text)
            if self.context_text is not None
            else getattr(getattr(self.q.repo, "report", None), "tokens", "?")
        )
        return prompts.ROOT_SYSTEM.format(
            shape=self._shape(),
            output_limit=self.output_limit,
            tokens=tokens,
            functions=functions,
            max_iterations=lim.max_iterations,
            max_llm_calls=lim.max_llm_calls,
        )

    def _fit(self, messages: list[Message]) -> list[Message]:
        """Keep the system prompt, the question and as many recent turns as the window holds."""
        window = self.q.engine.root_window - (self.q.engine.root_max_output or 1024)
        head, tail = messages[:2], messages[2:]
        cost = sum(estimate_tokens(m.content) for m in head)
        kept: list[Message] = []
        for i in range(len(tail) - 1, -1, -2):
            pair = tail[max(0, i - 1) : i + 1]
            pair_cost = sum(estimate_tokens(m.content) for m in pair)
            if cost + pair_cost > window and kept:
                break
            if cost + pair_cost > window:
                budget_chars = max(500, (window - cost) * 4)
                pair = [
                    Message(m.role, m.content[-budget_chars:]) if m.role == "user" else m
                    for m in pair
                ]
                pair_cost = sum(estimate_tokens(m.content) for m in pair)
            kept[:0] = pair
            cost += pair_cost
        dropped = len(tail) - len(kept)
        if dropped:
            note = Message(
                "user",
                f"[{dropped // 2} earlier turns were dropped to fit the context window; your REPL "
                "variables still hold everything you computed]",
            )
            ack = Message("assistant", "Understood.")
            return [*head, note, ack, *kept]
        return head + kept

    def _turn(self, iteration: int) -> str:
        return prompts.TURN_MARKER.format(
            iteration=iteration, max_iterations=self.q.limits.max_iterations
        )

    async def run(self) -> _Outcome:
        q = self.q
        self.session = await self._start_session()
        messages = [
            Message("system", self._system_prompt()),
            Message("user", prompts.FIRST_TURN.format(turn=self._turn(1), question=self.question)),
        ]
        seen: Counter[str] = Counter()
        iteration = 0
        stop: BudgetExceeded | None = None
        while True:
            iteration += 1
            try:
                q.budget.check_iteration(iteration)
                reply = await q.root_call(self._fit(messages))
            except BudgetExceeded as exc:
                stop = exc
                break
            except BackendError as exc:
                return _Outcome(self.partial, "error", error=str(exc), iterations=iteration)
            q.writer.write(
                "root_reply",
                depth=self.depth,
                iteration=iteration,
                reply=reply.text,
                input_tokens=reply.usage.input_tokens,
                output_tokens=reply.usage.output_tokens,
            )
            await q.notify(
                {
                    "kind": "iteration",
                    "depth": self.depth,
                    "iteration": iteration,
                    "max_iterations": q.limits.max_iterations,
                }
            )
            messages.append(Message("assistant", reply.text))
            next_turn = self._turn(iteration + 1)
            blocks = extract_code_blocks(reply.text)
            if not blocks:
                template = (
                    prompts.PROSE_FINAL_NUDGE
                    if mentions_final_in_prose(reply.text)
                    else prompts.NO_CODE_NUDGE
                )
                messages.append(Message("user", template.format(turn=next_turn)))
                continue
            outputs, done, answer = await self._run_blocks(blocks, iteration)
            if done:
                return _Outcome(answer, "completed", iterations=iteration)
            if self.stop_requested is not None:
                stop = self.stop_requested
                break
            key = normalize_code("\n".join(blocks)) + "\x00" + outputs
            seen[key] += 1
            if seen[key] >= _LOOP_STOP_AT:
                stop = LoopDetected(f"the same code ran {seen[key]} times with the same output")
                break
            if seen[key] >= _LOOP_WARN_AT:
                q.writer.write("note", depth=self.depth, message="loop intervention")
                messages.append(
                    Message(
                        "user", prompts.LOOP_INTERVENTION.format(turn=next_turn, count=seen[key])
                    )
                )
                continue
            notes = "".join(f"\nNote: {n}" for n in self.notes)
            self.notes.clear()
            messages.append(
                Message(
                    "user", prompts.OUTPUT_TEMPLATE.format(turn=next_turn, outputs=outputs) + notes
                )
            )
        return await self._finish(messages, stop, iteration - 1)

    async def _run_blocks(self, blocks: list[str], iteration: int) -> tuple[str, bool, str]:
        parts: list[str] = []
        for index, code in enumerate(blocks, 1):
            result = await self._exec(code)
            self.q.writer.write(
                "exec",
                depth=self.depth,
                iteration=iteration,
                code=code,
                stdout=result.stdout,
                stderr=result.stderr,
                error=result.error,
                value=result.value,
                duration=result.duration,
                restarted=result.restarted,
            )
            body = _format_exec(result)
            parts.append(
                prompts.BLOCK_OUTPUT.format(index=index, body=body) if len(blocks) > 1 else body
            )
            ready, text = await self._answer()
            if ready:
                return "\n".join(parts), True, text
        outputs = "\n".join(parts)
        if len(outputs) > self.output_limit:
            cut = len(outputs) - self.output_limit
            outputs = (
                outputs[: self.output_limit] + f"\n... [output truncated: {cut} more characters]"
            )
        self.last_output = outputs
        return outputs, False, ""

    async def _finish(
        self, messages: list[Message], stop: BudgetExceeded | None, iterations: int
    ) -> _Outcome:
        """A limit stopped the loop: ask once for the best answer, with spending off."""
        q = self.q
        reason = stop or IterationLimitExceeded(f"max_iterations={q.limits.max_iterations} reached")
        limit = reason.limit
        if reason.limit in ("max_iterations", "loop_detected") and q.limit_hit is not None:
            limit = q.limit_hit.limit if reason.limit == "max_iterations" else limit
        q.writer.write("note", depth=self.depth, message=f"stopping: {reason}")
        self.spending_disabled = True
        request = prompts.FINAL_REQUEST.format(reason=str(reason))
        if len(messages) > 2 and messages[-1].role == "user":
            final_messages = [*messages[:-1], Message("user", messages[-1].content + "\n\n" + request)]
        else:
            final_messages = [*messages, Message("user", request)]
        try:
            reply = await q.root_call(self._fit(final_messages), final=True)
            q.writer.write(
                "root_reply",
                depth=self.depth,
                iteration=iterations + 1,
                reply=reply.text,
                final=True,
            )
            for code in extract_code_blocks(reply.text)[:3]:
                await self._exec(code)
                ready, text = await self._answer()
                if ready:
                    return _Outcome(text, "limit_reached", limit=limit, iterations=iterations)
        except (BudgetExceeded, BackendError) as exc:
            q.writer.write("note", depth=self.depth, message=f"final answer request failed: {exc}")
        answer = self.partial
        if not answer:
            tail = self.last_output[-1500:].strip()
            answer = f"No final answer: the query stopped ({reason})."
            if tail:
                answer += f"\nLast REPL output:\n{tail}"
        return _Outcome(answer, "limit_reached", limit=limit, iterations=iterations)


def _format_exec(result: ExecResult) -> str:
    parts: list[str] = []
    if result.restarted:
        parts.append("[the REPL was restarted: all variables were lost]")
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.value is not None:
        parts.append(result.value)
    if result.error:
        parts.append(result.error.rstrip("\n"))
    if result.timed_out and not result.restarted:
        parts.append("[the code timed out; variables were kept]")
    return "\n".join(parts) if parts else "(no output)"
