"""History compaction: a session's older turns folded into one note by the sub model.

Runs before a follow-up's first root call when the recalled history would take
more than its share of the root's window
(:meth:`~rlm_mcp.engine.conversation.Conversation.needs_compaction`). The call
is a sub-call like any other: it spends from the query's budget and shows in
its usage. When it cannot be made (budget, provider), the turns are folded
mechanically (each question and the start of its answer) rather than dropped.
The trajectory records a ``compacted`` event either way.
"""

from __future__ import annotations

import logging

from rlm_mcp.engine import prompts
from rlm_mcp.engine.calls import LevelSignals, QueryRun
from rlm_mcp.engine.conversation import NOTE_TOKENS, Conversation, Turn
from rlm_mcp.errors import RlmMcpError

__all__ = ["compact"]

log = logging.getLogger(__name__)

COMPACT_PROMPT = """\
Summarise this earlier part of a question-and-answer session about a code repository \
in at most {words} words. Keep every file path, symbol name, number and conclusion a \
follow-up question might need; drop pleasantries and reasoning steps. Reply with the \
summary only.

{earlier}"""


def _mechanical(note: str, turns: list[Turn]) -> str:
    lines = [note] if note else []
    for t in turns:
        lines.append(f"- Q: {t.question.strip()[:200]} -> A: {t.answer.strip()[:300]}")
    return "\n".join(lines)


async def compact(run: QueryRun, conversation: Conversation) -> None:
    """Fold all but the latest turns of ``conversation`` into its note."""
    turns = conversation.to_compact()
    if not turns:
        return
    earlier = "\n\n".join(
        ([f"Summary so far:\n{conversation.note}"] if conversation.note else [])
        + [t.render() for t in turns]
    )
    prompt = COMPACT_PROMPT.format(
        words=int(NOTE_TOKENS * 0.7),
        earlier=prompts.untrusted(earlier, "session history"),
    )
    how = "sub_model"
    try:
        note = await run.sub_call(prompt, None, 0, LevelSignals())
    except RlmMcpError as exc:
        log.info("compaction by the sub model failed (%s); folding mechanically", exc)
        note, how = _mechanical(conversation.note, turns), f"mechanical ({exc})"
    if not note.strip():
        note, how = _mechanical(conversation.note, turns), "mechanical (empty summary)"
    conversation.compacted(len(turns), note)
    run.writer.write(
        "compacted",
        depth=0,
        turns=len(turns),
        total_compacted=conversation.compacted_turns,
        how=how,
        note=conversation.note,
    )
