"""How a query starts (``Settings.strategy``): free exploration, locate-first or locate-only.

* ``explore``: the root model starts from the ranked candidates and searches freely.
* ``locate-first``: before the first root turn the engine runs ``repo.locate`` (the
  fixed localization program of :mod:`.locate`, in the query's REPL, under its
  guardrails); the first message lists the judged locations with their reasons,
  and the REPL holds them as ``located``.
* ``locate-only``: the same program, then one root call composes the answer from
  the judged locations and their code; no free exploration. When the program
  finds nothing, the query falls back to exploring.

The judged list is also what an answer's "also relevant" section shows
(:func:`~rlm_mcp.engine.result.also_relevant`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from rlm_mcp.backends import Message
from rlm_mcp.engine import prompts
from rlm_mcp.engine.calls import QueryRun
from rlm_mcp.engine.grounding import check_citations
from rlm_mcp.engine.result import Outcome
from rlm_mcp.errors import BackendError, BudgetExceeded

__all__ = [
    "LOCATE_K",
    "STRATEGIES",
    "compose",
    "compose_messages",
    "located_listing",
    "run_locate",
]

STRATEGIES = ("explore", "locate-first", "locate-only")
LOCATE_K = 8
LISTING_CHARS = 1_400
"""The judged locations in the first message: about 350 tokens."""
EVIDENCE_CHARS = 6_000
"""Code shown to the one composing call of ``locate-only``: about 1,500 tokens."""
LINES_PER_LOCATION = 30


async def run_locate(
    exec_code: Callable[[str], Awaitable[Any]],
    get: Callable[[str], Awaitable[Any]],
    question: str,
) -> list[dict[str, Any]]:
    """Run ``repo.locate`` in the REPL as ``located``; its items (``[]`` when it failed)."""
    await exec_code(f"located = repo.locate({question!r}, k={LOCATE_K})\n")
    value = await get("located")
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and "path" in v and "line" in v]


def _where(item: dict[str, Any]) -> str:
    end = item.get("end_line") or item["line"]
    span = f"{item['path']}:{item['line']}" + (f"-{end}" if end != item["line"] else "")
    name = item.get("qualname") or ""
    return span + (f" {item.get('kind', '')} {name}".rstrip() if name else "")


def located_listing(items: Sequence[dict[str, Any]]) -> str:
    """The judged locations as numbered lines (bounded), each with the judge's reason."""
    lines: list[str] = []
    used = 0
    for i, item in enumerate(items):
        verdict = "" if item.get("relevant") else " (not judged)"
        line = f"{i}. {_where(item)}{verdict} — {item.get('reason', '')}".rstrip(" —")
        if used + len(line) > LISTING_CHARS:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def compose_messages(
    question: str, items: Sequence[dict[str, Any]], read: Callable[[str, int, int], str]
) -> list[Message]:
    """The one root call of ``locate-only``: the question and the judged locations' code."""
    blocks: list[str] = []
    used = 0
    for item in items:
        start = int(item["line"])
        end = min(int(item.get("end_line") or start), start + LINES_PER_LOCATION)
        try:
            code = read(item["path"], start, end)
        except Exception:
            continue
        block = f"--- {_where(item)} — {item.get('reason', '')}\n{code}"
        if used + len(block) > EVIDENCE_CHARS:
            break
        blocks.append(block)
        used += len(block)
    evidence = prompts.untrusted("\n".join(blocks), "located code")
    return [
        Message("system", prompts.LOCATE_ONLY_SYSTEM),
        Message("user", prompts.LOCATE_ONLY.format(question=question, evidence=evidence)),
    ]


async def compose(q: QueryRun, question: str, items: Sequence[dict[str, Any]]) -> Outcome:
    """``locate-only``: one root call answers from the judged locations' code; its citations
    are checked against the index like any final answer's."""
    messages = compose_messages(question, items, q.repo.read)
    try:
        reply = await q.root_call(messages)
    except BudgetExceeded as exc:
        q.note_limit(exc)
        return Outcome("", "limit_reached", limit=exc.limit, iterations=0)
    except BackendError as exc:
        return Outcome("", "error", error=str(exc), error_kind=exc.kind, iterations=1)
    q.writer.write(
        "root_reply", depth=0, iteration=1, reply=reply.text, composed=True, **q.usage_fields(reply)
    )
    answer = reply.text.strip()
    if not answer:
        return Outcome("", "error", error="the model's composed answer was empty", iterations=1)
    citations = await anyio.to_thread.run_sync(check_citations, q.repo, answer)
    return Outcome(answer, "completed", iterations=1, citations=citations)
