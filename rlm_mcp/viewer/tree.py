"""A trajectory's events folded into the recursion tree the viewer draws.

A query (``start`` … ``end``) holds turns (``root_reply``); a turn holds its code
blocks with their output (``exec``), its ``llm_query`` sub-calls (``sub_call``,
written one depth below the turn's level), its notes, and the nested
``rlm_query`` levels it started (a ``start`` one depth below). Only the top
level has an ``end`` event; a nested level ends when its last event was written.

Times come from the events' timestamps (``t``): a turn lasts from the end of the
turn before it (or its level's start) to its last event, model latency included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Query", "SubCall", "Trace", "Turn", "build_tree"]


def _num(value: Any) -> float:
    """A number from an event field; anything else (a missing field, a string) is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _tokens(event: dict[str, Any]) -> int:
    return int(_num(event.get("input_tokens")) + _num(event.get("output_tokens")))


def _cost(event: dict[str, Any]) -> Decimal | None:
    """The event's ``cost_usd`` (None when the call's model has no price, or it is malformed)."""
    raw = event.get("cost_usd")
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _total(costs: Iterable[Decimal | None]) -> Decimal | None:
    """The sum of the known costs; None when none is known."""
    known = [c for c in costs if c is not None]
    return sum(known, Decimal(0)) if known else None


@dataclass
class SubCall:
    """One ``llm_query`` call: prompt, answer, model, tokens."""

    event: dict[str, Any]

    @property
    def tokens(self) -> int:
        return _tokens(self.event)

    @property
    def cost(self) -> Decimal | None:
        return _cost(self.event)


@dataclass
class Turn:
    """One reply of a level's model and what it caused."""

    reply: dict[str, Any]
    began: float
    execs: list[dict[str, Any]] = field(default_factory=list)
    sub_calls: list[SubCall] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    children: list[Query] = field(default_factory=list)
    last: float = 0.0

    @property
    def tokens(self) -> int:
        own = _tokens(self.reply) + sum(s.tokens for s in self.sub_calls)
        return own + sum(c.tokens for c in self.children)

    @property
    def cost(self) -> Decimal | None:
        own = [_cost(self.reply), *(s.cost for s in self.sub_calls)]
        return _total([*own, *(c.cost for c in self.children)])

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.began)

    @property
    def ended(self) -> float:
        return max([self.last, *(c.ended for c in self.children)])

    @property
    def llm_calls(self) -> int:
        own = 1 + sum(1 for s in self.sub_calls if not s.event.get("cached"))
        return own + sum(c.llm_calls for c in self.children)


@dataclass
class Query:
    """One level of recursion: its question, its turns, and (the top level) its end."""

    start: dict[str, Any]
    depth: int
    turns: list[Turn] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    sub_calls: list[SubCall] = field(default_factory=list)
    end: dict[str, Any] | None = None
    last: float = 0.0

    @property
    def began(self) -> float:
        return _num(self.start.get("t"))

    @property
    def ended(self) -> float:
        return max([self.last, *(t.ended for t in self.turns)])

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.began)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.turns) + sum(s.tokens for s in self.sub_calls)

    @property
    def cost(self) -> Decimal | None:
        return _total([*(t.cost for t in self.turns), *(s.cost for s in self.sub_calls)])

    @property
    def llm_calls(self) -> int:
        return sum(t.llm_calls for t in self.turns) + len(self.sub_calls)


@dataclass
class Trace:
    """Every top-level query of one trajectory file (a session's file may hold several)."""

    queries: list[Query] = field(default_factory=list)
    stray: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """No query yet, or the last one has not written its ``end`` event."""
        return not self.queries or self.queries[-1].end is None


class _Builder:
    def __init__(self) -> None:
        self.trace = Trace()
        self.stack: list[Query] = []

    def level(self, depth: int) -> Query | None:
        return self.stack[depth] if 0 <= depth < len(self.stack) else None

    def turn(self, depth: int) -> Turn | None:
        query = self.level(depth)
        return query.turns[-1] if query is not None and query.turns else None

    def touch(self, query: Query, t: float) -> None:
        query.last = max(query.last, t)
        turn = query.turns[-1] if query.turns else None
        if turn is not None:
            turn.last = max(turn.last, t)

    def add(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        depth = int(_num(ev.get("depth")))
        t = _num(ev.get("t"))
        if kind == "start":
            self.start(ev, depth, t)
            return
        if kind == "sub_call":
            query = self.level(depth - 1)
            if query is None:
                self.trace.stray.append(ev)
                return
            turn = query.turns[-1] if query.turns else None
            (turn.sub_calls if turn is not None else query.sub_calls).append(SubCall(ev))
            self.touch(query, t)
            return
        query = self.level(depth)
        if query is None:
            self.trace.stray.append(ev)
            return
        if kind == "root_reply":
            began = query.turns[-1].ended if query.turns else query.began
            query.turns.append(Turn(reply=ev, began=began, last=t))
        elif kind == "exec" and query.turns:
            query.turns[-1].execs.append(ev)
        elif kind == "end":
            query.end = ev
            query.last = max(query.last, t)
            del self.stack[depth:]
            return
        elif query.turns and kind == "note":
            query.turns[-1].notes.append(ev)
        else:
            query.notes.append(ev)
        self.touch(query, t)

    def start(self, ev: dict[str, Any], depth: int, t: float) -> None:
        query = Query(start=ev, depth=depth, last=t)
        parent = self.turn(depth - 1) if depth > 0 else None
        if parent is not None:
            parent.children.append(query)
            parent.last = max(parent.last, t)
        elif depth == 0 or not self.trace.queries:
            self.trace.queries.append(query)
        else:
            self.trace.stray.append(ev)
            return
        del self.stack[depth:]
        while len(self.stack) < depth:
            self.stack.append(query)
        self.stack.append(query)


def build_tree(events: Iterable[dict[str, Any]]) -> Trace:
    """Fold events (as :func:`~rlm_mcp.engine.trajectory.read_trajectory` yields them)."""
    builder = _Builder()
    for ev in events:
        builder.add(ev)
    return builder.trace
