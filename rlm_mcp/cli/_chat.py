"""``rlm-mcp chat PATH``: an interactive prompt over a repository, each question a follow-up.

Questions after the first continue one session: the REPL keeps its variables
and the earlier questions and answers are recalled (the oldest summarised by
the sub model when they outgrow the window). ``/reset`` starts a new session,
``/quit`` or Ctrl-D ends the chat. On a terminal the line editor keeps a
history (arrow keys); questions may also be piped in, one per line.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import TYPE_CHECKING

from rlm_mcp.cli._common import (
    EXIT_OK,
    Ctx,
    UsageError,
    load,
    make_service,
    one_shot,
    say,
    without_unusable_trajectories,
)
from rlm_mcp.cli._model_cmds import Progress, report_error, run_query, usage_line
from rlm_mcp.errors import SessionNotFound

if TYPE_CHECKING:
    from rlm_mcp.engine.result import RLMResult
    from rlm_mcp.service import RlmService

__all__ = ["cmd_chat"]

HELP = "/reset starts a new session, /quit or Ctrl-D ends the chat"


def _read(prompt: str) -> str:
    """One line from the user; EOFError at the end of input (Ctrl-D)."""
    if sys.stdin.isatty():
        return input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


async def _ask(
    service: RlmService, question: str, handle: str | None, progress: Progress
) -> RLMResult:
    return await service.query(question, progress=progress, session=handle)


async def cmd_chat(args: argparse.Namespace, ctx: Ctx) -> int:
    if ctx.config.settings.root_model is None:
        raise UsageError(
            "chat needs a model: set RLM_MODEL (and RLM_BASE_URL for a local server); "
            "without one, `rlm-mcp ask` answers from ranked search"
        )
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())
    config = without_unusable_trajectories(ctx)
    service = make_service(one_shot(config))
    handle: str | None = None
    try:
        service.engine()
        summary = await load(service, args.path, ctx)
        say(f"rlm-mcp: chat over {summary.name} ({summary.files:,} files); {HELP}")
        while True:
            try:
                question = _read("> ").strip()
            except EOFError:
                break
            if not question:
                continue
            if question in ("/quit", "/exit"):
                break
            if question == "/reset":
                if handle is not None:
                    service.sessions.close(handle)
                handle = None
                say("rlm-mcp: a new session starts with the next question")
                continue
            if question.startswith("/"):
                say(f"rlm-mcp: unknown command {question.split()[0]}; {HELP}")
                continue
            try:
                result = await run_query(
                    Progress.for_args(args, ctx), partial(_ask, service, question, handle)
                )
            except SessionNotFound as exc:
                handle = None
                say(f"rlm-mcp: {exc}; the next question starts a new session")
                continue
            handle = result.session
            print(result.answer or "(no answer)", flush=True)
            say(usage_line(result))
            if result.status == "error":
                report_error(ctx, str(result.error))
    finally:
        await service.aclose()
    return EXIT_OK
