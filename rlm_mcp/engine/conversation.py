"""What a session carries from one query to the next: its REPL and its history.

A :class:`Conversation` is handed to :meth:`RLMEngine.run <rlm_mcp.engine.core.RLMEngine.run>`
for every query of one session. The top level of each query then runs in the
conversation's REPL (variables survive between questions) and its first
message recalls the earlier questions and answers. When that recollection
would take more than its share of the root's window, the oldest turns are
summarised by the sub model into one bounded note (*compaction*), which the
trajectory records; nothing is silently dropped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from rlm_mcp.backends.base import estimate_tokens
from sandbox import Session

__all__ = ["Conversation", "Turn"]

HISTORY_SHARE = 0.25
"""The share of the root's window the recalled history may take before it is compacted."""
NOTE_TOKENS = 600
"""The most tokens a compacted note keeps."""
KEEP_RECENT = 2
"""Turns always kept word for word (the latest ones) when older ones are compacted."""
ANSWER_CHARS = 4_000
"""The most characters of one earlier answer recalled word for word."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier question of the session and what it got."""

    question: str
    answer: str
    status: str = "completed"

    def render(self) -> str:
        answer = self.answer.strip() or "(no answer)"
        if len(answer) > ANSWER_CHARS:
            answer = answer[:ANSWER_CHARS] + f"\n[... {len(answer) - ANSWER_CHARS} more characters]"
        label = "" if self.status == "completed" else f" ({self.status})"
        return f"Q: {self.question.strip()}\nA{label}: {answer}"


class Conversation:
    """One session's REPL and history, shared by its queries one after another.

    The engine starts the REPL on first use and leaves it running after each
    query; :meth:`close` stops it. Its queries and REPL calls must run one
    after another (the service holds a lock per session).

    Attributes:
        turns: the questions answered so far and not compacted, oldest first.
        note: the compacted summary of older turns ("" before any compaction).
        compacted_turns: how many turns the note stands for.
    """

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.note = ""
        self.compacted_turns = 0
        self.session: Session | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="rlm-session-")
        self.context_path = Path(self._dir.name) / "context.txt"
        self.context_path.touch()
        self.closed = False

    @property
    def directory(self) -> Path:
        """Where the session's context file lives (readable by its REPL)."""
        return Path(self._dir.name)

    def record(self, question: str, answer: str, status: str) -> None:
        self.turns.append(Turn(question, answer, status))

    def history(self) -> str:
        """The earlier turns as the first message recalls them ("" for a first question)."""
        parts: list[str] = []
        if self.note:
            parts.append(f"Summary of {self.compacted_turns} earlier turns:\n{self.note}")
        parts.extend(t.render() for t in self.turns)
        return "\n\n".join(parts)

    def history_tokens(self) -> int:
        return estimate_tokens(self.history())

    def needs_compaction(self, root_window: int) -> bool:
        """True when the recalled history would take more than its share of the window."""
        return len(self.turns) > KEEP_RECENT and self.history_tokens() > int(
            root_window * HISTORY_SHARE
        )

    def to_compact(self) -> list[Turn]:
        """The turns a compaction folds into the note: all but the latest ones."""
        return self.turns[:-KEEP_RECENT] if len(self.turns) > KEEP_RECENT else []

    def compacted(self, folded: int, note: str) -> None:
        """Replace the oldest ``folded`` turns by ``note`` (cut to :data:`NOTE_TOKENS`)."""
        limit = NOTE_TOKENS * 4
        note = note.strip()
        if len(note) > limit:
            note = note[:limit].rstrip() + " [...]"
        self.note = note
        self.compacted_turns += folded
        del self.turns[:folded]

    def size_bytes(self) -> int:
        """What the session holds in this process and its context file (not the REPL's memory)."""
        held = len(self.note) + sum(len(t.question) + len(t.answer) for t in self.turns)
        try:
            held += self.context_path.stat().st_size
        except OSError:
            pass
        return held

    def close(self) -> None:
        """Stop the REPL and remove the context file; the conversation cannot be used again."""
        self.closed = True
        session, self.session = self.session, None
        if session is not None:
            session.close()
        self._dir.cleanup()
