"""One level of a query: a root conversation with its own sandboxed REPL.

The root model writes code, the level runs it and feeds back the output,
until executed code sets the final answer or a guardrail stops the loop.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp.backends.base import Message, estimate_tokens
from rlm_mcp.config import SandboxSettings
from rlm_mcp.engine import prompts, strategy
from rlm_mcp.engine.calls import LevelSignals, QueryRun
from rlm_mcp.engine.conversation import Conversation
from rlm_mcp.engine.grounding import check_citations
from rlm_mcp.engine.hostfns import describe
from rlm_mcp.engine.parsing import (
    extract_code_blocks,
    mentions_final_in_prose,
    normalize_code,
    prose_answer,
    without_turn_echo,
)
from rlm_mcp.engine.replapi import (
    prompt_function_list,
    repo_functions,
    session_config,
    start_session,
)
from rlm_mcp.engine.result import Candidate, Outcome
from rlm_mcp.errors import (
    BackendError,
    BudgetExceeded,
    IterationLimitExceeded,
    LoopDetected,
    RlmMcpError,
    TimeLimitExceeded,
)
from rlm_mcp.index.discover.names import escape
from sandbox import ExecResult, Session

__all__ = ["QueryLevel"]

_CONTEXT_NAME = re.compile(r"\bcontext\b")
_LOOP_WARN_AT = 2
_LOOP_STOP_AT = 3
_CELL = re.compile(r"<cell-\d+>")


SCOUT_HITS = 8
SCOUT_CHARS = 2_400


class QueryLevel:
    """One root conversation with its own REPL, at a given depth."""

    def __init__(
        self,
        query: QueryRun,
        *,
        sandbox: SandboxSettings,
        confirm_blind_final: bool,
        scout: bool,
        depth: int,
        question: str,
        context_text: str | None,
        context_label: str = "",
        conversation: Conversation | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        strategy: str = "explore",
    ) -> None:
        self.q = query
        self.strategy = strategy if depth == 0 else "explore"
        self.located: list[dict[str, Any]] = []
        self.sandbox = sandbox
        self.confirm_blind_final = confirm_blind_final
        self.scout = scout and depth == 0
        self.candidates: list[Candidate] = []
        self.depth = depth
        self.question = question
        self.context_text = context_text
        self.context_label = context_label or "text given with the question"
        self.conversation = conversation if depth == 0 else None
        self.functions = dict(functions or {})
        self.context_path = (
            self.conversation.context_path
            if self.conversation is not None
            else Path(query.tmp.name) / f"context-{depth}-{id(self)}.txt"
        )
        self.context_built = context_text is not None
        self.signals = LevelSignals()
        self.session: Session | None = None
        self.last_output = ""
        self.partial = ""
        self._dropped = 0
        self._blind = False
        self._grounding_shown = False
        window = query.engine.root.context_window
        self.output_limit = min(sandbox.output_limit_chars, max(2_000, window))

    # -- sandbox -------------------------------------------------------------------------

    async def _start_session(self) -> Session:
        _replace_text(self.context_path, self.context_text or "")
        q = self.q
        d = self.depth
        sig = self.signals
        host: dict[str, Callable[..., Any]] = dict(repo_functions(q.repo, q.evidence))
        host["llm_query"] = q.bridge(lambda prompt, model=None: q.sub_call(prompt, model, d, sig))
        host["llm_query_batched"] = q.bridge(
            lambda prompts_, model=None: q.batched(prompts_, model, d, sig)
        )
        host["rlm_query"] = q.bridge(lambda prompt, context=None: q.child(prompt, context, d))
        host.update(self.functions)
        conv = self.conversation
        if conv is not None and conv.session is not None:
            # A follow-up: the session's REPL keeps its variables; this query binds its own
            # llm_query and friends, starts with no answer and re-reads ``context``.
            conv.session.rebind(host)
            await anyio.to_thread.run_sync(conv.session.exec, _FOLLOW_UP)
            return conv.session
        config = session_config(
            self.sandbox,
            q.repo.root,
            exec_timeout=q.limits.exec_timeout_seconds,
            output_limit=self.output_limit,
            # The directory (the query's or the session's own), not the file: the file is
            # replaced when written, and a bind mount of it would keep showing the old one.
            readable_paths=(self.context_path.parent,),
            lazy_text={"context": self.context_path},
        )
        session = await anyio.to_thread.run_sync(start_session, config, host)
        if conv is not None:
            conv.session = session
        else:
            q.sessions.append(session)
        return session

    async def _scout(self) -> str:
        """Ranked search on the question before the first root call (no model involved).

        The hits go into the first message (bounded, about 600 tokens) and into
        the REPL as ``candidates``, so the model starts by checking likely
        places instead of guessing patterns.
        """
        if not self.scout:
            return ""
        try:
            hits = await anyio.to_thread.run_sync(self.q.repo.search, self.question, SCOUT_HITS)
        except RlmMcpError:
            return ""
        self.candidates = list(hits)
        if not self.candidates:
            return ""
        payload = json.dumps([c.as_dict() for c in self.candidates])
        await self._exec(f"candidates = json.loads({payload!r})\n")
        lines: list[str] = []
        used = 0
        for i, c in enumerate(self.candidates):
            line = f"{i}. {c}"
            if used + len(line) > SCOUT_CHARS:
                break
            lines.append(line)
            used += len(line) + 1
        self.q.writer.write("note", depth=self.depth, message="scouted", candidates=lines)
        return prompts.untrusted("\n".join(lines), "search results")

    def _build_context(self) -> None:
        """Write the whole repository as one text, once, when code first mentions ``context``."""
        if self.context_built:
            return
        self.context_built = True
        tmp = self.context_path.with_name(self.context_path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for path in self.q.repo.files():
                try:
                    text = self.q.repo.text(path)
                except RlmMcpError:
                    continue
                fh.write(f"=== {path} ===\n")
                fh.write(text)
                if not text.endswith("\n"):
                    fh.write("\n")
        os.replace(tmp, self.context_path)

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

    async def _get(self, name: str) -> Any:
        assert self.session is not None
        return await anyio.to_thread.run_sync(self.session.get, name)

    async def _answer(self) -> tuple[bool, str]:
        value = await self._get("answer")
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
        report = repo.report
        lang_text = ", ".join(
            f"{k} ({v})" for k, v in sorted(report.languages.items(), key=lambda kv: -kv[1])[:12]
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
        note = repo.partial_note()
        partial = (
            f"Index: {note}; prefer repo.grep, which covers every file\n"
            if note is not None
            else ""
        )
        return (
            f"Name: {escape(repo.root.name)}\nFiles: {report.files}\nSize: ~{report.tokens} tokens\n"
            f"Languages: {lang_text or 'unknown'}\n{partial}Top-level layout (file counts):\n"
            + prompts.untrusted(layout, "file names")
        )

    def _system_prompt(self) -> str:
        lim = self.q.limits
        functions = prompt_function_list(self.q.engine.sub.context_window)
        if self.functions:
            functions += "\nThe caller's own functions:\n" + describe(self.functions)
        if self.context_text is not None:
            note = prompts.CONTEXT_IS_GIVEN.format(
                label=self.context_label,
                chars=len(self.context_text),
                tokens=estimate_tokens(self.context_text),
            )
        else:
            note = prompts.CONTEXT_IS_REPOSITORY.format(tokens=self.q.repo.report.tokens)
        return prompts.ROOT_SYSTEM.format(
            shape=self._shape(),
            output_limit=self.output_limit,
            context_note=note,
            functions=functions,
            max_iterations=lim.max_iterations,
            max_llm_calls=lim.max_llm_calls,
        )

    def _fit(self, messages: list[Message]) -> list[Message]:
        """Keep the system prompt, the question and as many recent turns as the window holds.

        Old turns are dropped in large steps (down to ~60% of the window) and the
        cut point is remembered, so the prompt's prefix stays the same for
        several turns and a server's prompt cache keeps working.
        """
        root = self.q.engine.root
        window = root.context_window - (root.max_output_tokens or 1024)
        head, tail = messages[:2], messages[2:]
        head_cost = sum(estimate_tokens(m.content) for m in head)

        def cost_from(start: int) -> int:
            return head_cost + sum(estimate_tokens(m.content) for m in tail[start:])

        start = min(self._dropped, max(0, len(tail) - 2))
        if cost_from(start) > window:
            target = int(window * 0.6)
            while start < len(tail) - 2 and cost_from(start) > target:
                start += 2
        self._dropped = start
        kept = tail[start:]
        overflow = cost_from(start) - window
        if overflow > 0 and kept:
            budget_chars = max(500, (estimate_tokens(kept[-1].content) - overflow) * 4)
            last = kept[-1]
            kept = [*kept[:-1], Message(last.role, "[...cut...]\n" + last.content[-budget_chars:])]
        if start:
            note = Message(
                "user",
                f"[{start // 2} earlier turns were dropped to fit the context window; your REPL "
                "variables still hold everything you computed]",
            )
            return [*head, note, Message("assistant", "Understood."), *kept]
        return head + kept

    def _turn(self, iteration: int) -> str:
        return prompts.TURN_MARKER.format(
            iteration=iteration, max_iterations=self.q.limits.max_iterations
        )

    def _first_message(self, scouted: str) -> str:
        """The question, after the session's history, before the located or scouted places."""
        first = prompts.FIRST_TURN.format(turn=self._turn(1), question=self.question)
        if self.conversation is not None and (history := self.conversation.history()):
            shown = prompts.untrusted(history, "session history")
            first = prompts.SESSION_HISTORY.format(history=shown) + "\n\n" + first
        if self.located:
            listing = prompts.untrusted(strategy.located_listing(self.located), "located places")
            return first + "\n\n" + prompts.LOCATED.format(located=listing)
        if scouted:
            return first + "\n\n" + prompts.SCOUTED.format(candidates=scouted)
        return first

    async def run(self) -> Outcome:
        q = self.q
        self.session = await self._start_session()
        scouted = await self._scout()
        if self.strategy != "explore":
            self.located = await strategy.run_locate(self._exec, self._get, self.question)
            if self.located and self.strategy == "locate-only":
                return await strategy.compose(q, self.question, self.located)
        first = self._first_message(scouted)
        messages = [Message("system", self._system_prompt()), Message("user", first)]
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
                return Outcome(
                    self.partial,
                    "error",
                    error=str(exc),
                    error_kind=exc.kind,
                    iterations=iteration,
                )
            q.writer.write(
                "root_reply",
                depth=self.depth,
                iteration=iteration,
                reply=reply.text,
                **q.usage_fields(reply),
            )
            await q.notify("iteration", self.depth, iteration, q.limits.max_iterations)
            messages.append(Message("assistant", reply.text))
            next_turn = self._turn(iteration + 1)
            blocks = extract_code_blocks(reply.text)
            if not blocks:
                nudge = self._no_code(reply.text, seen, next_turn)
                if isinstance(nudge, LoopDetected):
                    stop = nudge
                    break
                messages.append(nudge)
                continue
            outputs, done, answer = await self._run_blocks(blocks, iteration)
            if done:
                checked = await self._on_final(answer, outputs, iteration, next_turn)
                if isinstance(checked, Outcome):
                    return checked
                messages.append(checked)
                continue
            if self.signals.stop_requested is not None:
                stop = self.signals.stop_requested
                break
            key = normalize_code("\n".join(blocks)) + "\x00" + _CELL.sub("<cell>", outputs)
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
            notes = "".join(f"\nNote: {n}" for n in self.signals.notes)
            self.signals.notes.clear()
            messages.append(
                Message(
                    "user",
                    prompts.OUTPUT_TEMPLATE.format(
                        turn=next_turn, outputs=prompts.untrusted(outputs, "REPL output")
                    )
                    + notes,
                )
            )
        return await self._finish(messages, stop, iteration - 1)

    def _no_code(self, text: str, seen: Counter[str], next_turn: str) -> Message | LoopDetected:
        """A reply without code: the nudge to send, or the stop once it repeats (``seen``)."""
        repeat = "\x01prose\x00" + without_turn_echo(" ".join(text.split()))[:2000]
        seen[repeat] += 1
        if seen[repeat] >= _LOOP_STOP_AT:
            self.partial = self.partial or text.strip()
            return LoopDetected(f"the same reply without code came {seen[repeat]} times; stopping")
        prose = prose_answer(text)
        if mentions_final_in_prose(text):
            nudge = prompts.PROSE_FINAL_NUDGE.format(turn=next_turn)
        elif prose:
            nudge = prompts.PROSE_ANSWER_NUDGE.format(turn=next_turn, prose=prose)
            self.partial = self.partial or text.strip()
        else:
            nudge = prompts.NO_CODE_NUDGE.format(turn=next_turn)
        return Message("user", nudge)

    async def _on_final(
        self, answer: str, outputs: str, iteration: int, next_turn: str
    ) -> Outcome | Message:
        """A reply that set the answer: the outcome, or the turn that takes it back to
        confirm a blind FINAL in turn 1 or (once) to fix citations the index lacks."""
        if iteration == 1 and self.confirm_blind_final and self._blind:
            shown = prompts.untrusted(outputs, "REPL output")
            turn = prompts.BLIND_FINAL.format(turn=next_turn, answer=answer[:500], outputs=shown)
            return await self._take_back(answer, "blind FINAL in turn 1: asked to confirm", turn)
        citations = (
            await anyio.to_thread.run_sync(check_citations, self.q.repo, answer)
            if self.depth == 0
            else []
        )
        unknown = [c for c in citations if not c.verified]
        if unknown and self.depth == 0 and not self._grounding_shown:
            self._grounding_shown = True
            listed = "\n".join(prompts.describe_citation(c) for c in unknown)
            turn = prompts.UNVERIFIED_CITATIONS.format(turn=next_turn, citations=listed)
            note = f"unverified citations shown back: {[c.text for c in unknown]}"
            return await self._take_back(answer, note, turn)
        return Outcome(answer, "completed", iterations=iteration, citations=citations)

    async def _take_back(self, answer: str, note: str, turn: str) -> Message:
        """Unset the answer (it stays the partial one), note why, and give ``turn`` to send."""
        await self._exec(_RESET_ANSWER)
        self.partial = answer
        self.q.writer.write("note", depth=self.depth, message=note)
        return Message("user", turn)

    async def _run_blocks(self, blocks: list[str], iteration: int) -> tuple[str, bool, str]:
        """Run the blocks in order until one sets the answer.

        ``self._blind`` records whether the code printed anything (or failed)
        in the same reply that set the answer: output the model never saw.
        """
        parts: list[str] = []
        self._blind = False
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
            body = prompts.format_exec(result)
            self._blind = self._blind or bool(
                result.stdout.strip() or result.stderr.strip() or result.error
            )
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
    ) -> Outcome:
        """A limit stopped the loop: ask once for the best answer, with spending off."""
        q = self.q
        reason = stop or IterationLimitExceeded(f"max_iterations={q.limits.max_iterations} reached")
        limit = reason.limit
        if reason.limit in ("max_iterations", "loop_detected") and q.limit_hit is not None:
            limit = q.limit_hit.limit if reason.limit == "max_iterations" else limit
        q.writer.write("note", depth=self.depth, message=f"stopping: {reason}")
        self.signals.spending_disabled = True
        request = prompts.FINAL_REQUEST.format(reason=str(reason))
        final_messages = messages[:2]
        if len(messages) > 3 and messages[-1].role == "user":
            # Only the last exchange: the final call must be quick, even on a slow local model.
            final_messages += [
                messages[-2],
                Message("user", messages[-1].content + "\n\n" + request),
            ]
        elif len(messages) > 2 and messages[-1].role == "assistant":
            final_messages += [messages[-1], Message("user", request)]
        else:
            final_messages = (
                [*final_messages, Message("user", request)]
                if len(messages) <= 2
                else [*messages[:-1], Message("user", messages[-1].content + "\n\n" + request)]
            )
        try:
            if _endpoint_stalled(reason):
                # The root call was cut off waiting on the model: asking the same
                # endpoint again would only wait again.
                raise BackendError(f"not asked again: {reason}")
            reply = await q.root_call(self._fit(final_messages), final=True)
            q.writer.write(
                "root_reply",
                depth=self.depth,
                iteration=iterations + 1,
                reply=reply.text,
                final=True,
                **q.usage_fields(reply),
            )
            for code in extract_code_blocks(reply.text)[:3]:
                await self._exec(code)
                ready, text = await self._answer()
                if ready:
                    return Outcome(
                        text,
                        "limit_reached",
                        limit=limit,
                        iterations=iterations,
                        error_kind=q.limit_kind(limit),
                    )
        except (BudgetExceeded, BackendError) as exc:
            q.writer.write("note", depth=self.depth, message=f"final answer request failed: {exc}")
        note = None
        if not self.partial:
            # Why there is no answer is status, not an answer: it goes to ``error``.
            tail = self.last_output[-1500:].strip()
            note = f"No final answer: the query stopped ({reason})."
            if tail:
                note += f"\nLast REPL output:\n{tail}"
        return Outcome(
            self.partial,
            "limit_reached",
            limit=limit,
            error=note,
            iterations=iterations,
            error_kind=q.limit_kind(limit),
        )


_RESET_ANSWER = 'answer = {"content": "", "ready": False}\n'
_FOLLOW_UP = _RESET_ANSWER + 'globals().pop("context", None)\n'


def _replace_text(path: Path, text: str) -> None:
    """Write ``path`` anew (a new file, so a REPL's cached copy of the old one is not reused)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _endpoint_stalled(reason: BudgetExceeded) -> bool:
    """The loop stopped because a root call was still waiting on the model at the wall limit."""
    return isinstance(reason, TimeLimitExceeded) and "cut off" in str(reason)
