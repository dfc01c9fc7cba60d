"""The commands that run the model (ask, review) and the one that reads what they wrote (trace).

Progress goes to stderr only when someone is watching: a live status line
(turn, calls, spend, seconds, "waiting for the model") when stderr is a
terminal, one line per turn with ``--progress`` when it is not, nothing
otherwise, so logs and CI output stay clean.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

import rlm_mcp.schemas as schemas
from rlm_mcp.cli._common import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_NEGATIVE,
    EXIT_OK,
    Ctx,
    Failure,
    UsageError,
    counts,
    dump,
    endpoint_hint,
    error_line,
    load,
    make_service,
    on_repo,
    one_shot,
    say,
    without_unusable_trajectories,
)
from rlm_mcp.errors import RepositoryNotFound

if TYPE_CHECKING:
    from rlm_mcp.engine.progress import ProgressEvent
    from rlm_mcp.engine.result import RLMResult
    from rlm_mcp.service import LoadSummary, RlmService

_TRAJECTORY_EVENTS = {"start", "root_reply", "exec", "sub_call", "note", "end"}


class Progress:
    """The query's progress on stderr: ``live`` (a redrawn line), ``lines`` or ``off``."""

    def __init__(self, mode: str, stream: TextIO, max_iterations: int) -> None:
        self.mode = mode
        self.stream = stream
        self.turn, self.max_turns, self.sub_calls = 1, max_iterations, 0
        self.calls, self.cost = 0, "0"
        self.started = time.monotonic()
        self.drawn = False

    @classmethod
    def for_args(cls, args: argparse.Namespace, ctx: Ctx) -> Progress:
        wanted = args.progress
        mode = "off"
        if ctx.stderr_tty and wanted is not False:
            mode = "live"
        elif wanted:
            mode = "lines"
        return cls(mode, sys.stderr, ctx.config.limits.max_iterations)

    def _status(self) -> str:
        calls = f"{self.calls} LLM call{'s' if self.calls != 1 else ''}"
        subs = f" · {self.sub_calls} sub-calls" if self.sub_calls else ""
        elapsed = time.monotonic() - self.started
        return (
            f"rlm-mcp: turn {self.turn}/{self.max_turns}{subs} · {calls} · ${self.cost} spent · "
            f"{elapsed:.0f}s · waiting for the model"
        )

    async def __call__(self, event: ProgressEvent) -> None:
        self.calls, self.cost = event.calls, event.cost_usd
        if event.kind == "heartbeat":
            if self.mode == "lines":
                say(f"rlm-mcp: {event.elapsed_seconds:.0f}s; waiting on {event.waiting_on}")
            return
        if event.kind == "iteration":
            done = f"turn {event.iteration}/{event.max_iterations} (depth {event.depth})"
            if event.depth == 0:
                self.turn = min(event.iteration + 1, self.max_turns)
        else:
            self.sub_calls = event.sub_calls
            done = f"{self.sub_calls} sub-calls"
        if self.mode == "lines":
            say(f"rlm-mcp: {done} done; {self.calls} LLM calls, ${self.cost} spent")
        elif self.mode == "live":
            self._draw()

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + self._status())
        self.stream.flush()
        self.drawn = True

    async def tick(self) -> None:
        while True:
            self._draw()
            await anyio.sleep(0.5)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


async def run_query(
    progress: Progress, query: Callable[[Progress], Awaitable[RLMResult]]
) -> RLMResult:
    """Run ``query`` with a ticking status line when live; the query's own errors propagate."""
    if progress.mode != "live":
        return await query(progress)
    error: Exception | None = None
    result: RLMResult | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress.tick)
        try:
            result = await query(progress)
        except Exception as exc:
            error = exc
        finally:
            tg.cancel_scope.cancel()
            progress.close()
    if error is not None:
        raise error
    assert result is not None
    return result


def usage_line(result: RLMResult) -> str:
    u = result.usage
    line = (
        f"rlm-mcp: {result.status}"
        + (f" ({result.limit})" if result.limit else "")
        + f"; {u.calls} LLM calls, {u.tokens:,} tokens, ${u.cost_usd}, {result.wall_seconds:.1f}s"
    )
    if result.trajectory:
        line += f"; trajectory: {result.trajectory}"
    return line


def report_error(ctx: Ctx, message: str) -> None:
    say(error_line(message, ctx.color))
    hint = endpoint_hint(message, ctx.config)
    if hint:
        say(f"rlm-mcp: hint: {hint}")


def _nothing_indexed(summary: LoadSummary) -> int:
    skipped = f" (skipped: {counts(summary.skipped)})" if summary.skipped else ""
    say(
        f"rlm-mcp: nothing to answer from: {summary.root} has no indexable files{skipped}; "
        "no model was called. `rlm-mcp index PATH` lists what was skipped and why; raise "
        "RLM_MAX_FILE_BYTES for large files"
    )
    return EXIT_NEGATIVE


async def cmd_ask(args: argparse.Namespace, ctx: Ctx) -> int:
    if ctx.config.settings.root_model is None:
        return await _ask_from_search(args, ctx)
    config = without_unusable_trajectories(ctx)
    service: RlmService = make_service(one_shot(config))
    try:
        service.engine()
        summary = await load(service, args.path, ctx)
        if summary.files == 0:
            return _nothing_indexed(summary)
        result = await run_query(
            Progress.for_args(args, ctx),
            lambda p: service.query(args.question, progress=p),
        )
    finally:
        await service.aclose()
    if args.json:
        dump(result.as_dict())
    elif result.answer:
        from rlm_mcp.render import answer_block

        # unverified citations marked, verified ones listed, judged places apart
        print("\n".join(answer_block(result.as_dict())))
    say(usage_line(result))
    if result.status == "error":
        report_error(ctx, str(result.error))
        return EXIT_FAILED
    if result.error:
        say(f"rlm-mcp: {result.error}")
    return EXIT_OK if result.status == "completed" else EXIT_INCOMPLETE


async def _ask_from_search(args: argparse.Namespace, ctx: Ctx) -> int:
    """No model configured: answer with the ranked locations, labelled as such."""
    hits, summary = await on_repo(ctx, args.path, lambda r: r.search(args.question, 10))
    if summary.files == 0:
        return _nothing_indexed(summary)
    if args.json:
        payload = {
            "answer": None,
            "status": "search_only",
            "candidates": [schemas.search_hit(h) for h in hits],
        }
        dump(payload)
    else:
        print("No model is configured, so this answer comes from ranked search alone (no LLM).")
        if hits:
            print("The most likely places for your question:")
            for h in hits:
                print(f"  {h}")
        else:
            print("Nothing in the index matches the question's words.")
    say(
        "rlm-mcp: set RLM_MODEL (and RLM_BASE_URL for a local server) to have a model read "
        "these places and answer; see `rlm-mcp ask --help`"
    )
    return EXIT_OK


async def cmd_review(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.review import build_question, collect_diff, find_base, git_toplevel, judge

    try:
        repo = git_toplevel(args.repo.expanduser().resolve())
        base = args.base or find_base(repo)
        diff = collect_diff(repo, base)
    except RepositoryNotFound as exc:
        raise Failure(str(exc)) from None  # git failed: the review failed (3), see its --help
    if not diff.strip():
        say(f"rlm-mcp: no changes against {base}")
        if args.json:
            empty: dict[str, Any] = {"base": base, "verdict": "no_findings", "problem": None}
            dump({**empty, "findings": [], "answer": "", "status": "completed"})
        return EXIT_OK
    config = without_unusable_trajectories(ctx)
    if config.settings.index.index_url:
        from rlm_mcp.cli._index_cmds import pin_commit

        # A shared index: this checkout's own (pinned) identity, started from the
        # nearest indexed commit, so only the files that differ are parsed.
        config, _ = pin_commit(config, repo, None)
        index = replace(config.settings.index, commit_overlay=True)
        config = replace(config, settings=replace(config.settings, index=index))
    service: RlmService = make_service(one_shot(config))
    try:
        service.engine()
        await load(service, repo, ctx)
        say(f"rlm-mcp: reviewing {len(diff.splitlines()):,} diff lines against {base}")
        result = await run_query(
            Progress.for_args(args, ctx),
            lambda p: service.query(
                build_question(diff, base),
                progress=p,
                context=diff,
                context_label=f"diff of the working tree against {base}",
            ),
        )
    finally:
        await service.aclose()
    review = judge(result.answer, result.status, error=result.error, limit=result.limit)
    if args.json:
        out = {
            "base": base,
            "verdict": review.verdict,
            "problem": review.problem,
            "findings": [f.as_dict() for f in review.findings],
            **{k: v for k, v in result.as_dict().items() if k != "evidence"},
        }
        dump(out)
    else:
        for f in review.findings:
            print(f)
    say(usage_line(result))
    if review.verdict == "failed":
        report_error(ctx, f"review failed: {review.problem}")
        return EXIT_FAILED
    if review.verdict == "incomplete":
        say(error_line(f"review incomplete: {review.problem}", ctx.color))
        return EXIT_INCOMPLETE
    return EXIT_NEGATIVE if review.blocking else EXIT_OK


def _read_events(path: Path) -> list[dict[str, Any]]:
    from rlm_mcp.engine.trajectory import read_trajectory

    if path.is_dir():
        raise UsageError(f"{path} is a directory; pass a trajectory file (*.jsonl)")
    if not path.is_file():
        raise UsageError(f"no such trajectory file: {path}")
    try:
        events = list(read_trajectory(path))
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a trajectory: it is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not any(e.get("event") in _TRAJECTORY_EVENTS for e in events):
        raise UsageError(
            f"{path} is not a trajectory: it has no trajectory events "
            '(JSON lines with "event": start, root_reply, exec, end)'
        )
    return events


async def cmd_trace(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.engine.trajectory import format_trajectory

    path: Path | None = args.file
    if path is None:
        directory = ctx.config.settings.trajectory_dir
        found = sorted(directory.glob("*.jsonl")) if directory and directory.is_dir() else []
        if not found:
            say(f"rlm-mcp: no trajectories in {directory}; pass FILE")
            return EXIT_NEGATIVE
        path = found[-1]
    events = _read_events(path)
    if args.html is not None:
        from rlm_mcp.viewer import render_html

        page = render_html(events, title=path.name)
        try:
            if str(args.html) == "-":
                sys.stdout.write(page)
            else:
                args.html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror or exc}") from None
        return EXIT_OK
    sys.stdout.write(format_trajectory(iter(events), full=args.full))
    return EXIT_OK
