"""What a running query reports as it goes: one :class:`ProgressEvent` per step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["HEARTBEAT_SECONDS", "ProgressCallback", "ProgressEvent", "ProgressKind"]

HEARTBEAT_SECONDS = 4.0
"""A query with a progress callback reports at least this often, heartbeats included."""

ProgressKind = Literal["iteration", "sub_call", "heartbeat"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """A step of a query and the spend so far.

    ``kind`` is ``iteration`` when a level's model turn came back (turn
    ``iteration`` of ``max_iterations``, at ``depth``: 0 is the root) and
    ``sub_call`` when an ``llm_query`` returned (at the sub-call's ``depth``);
    ``iteration`` and ``max_iterations`` are 0 on a sub-call. The rest is the
    whole query's so far: ``sub_calls`` returned, model ``calls`` that returned,
    HTTP ``attempts``, ``tokens``, ``cost_usd`` (a decimal, as text) and
    ``elapsed_seconds``.

    ``heartbeat`` comes when nothing else was reported for a while (every
    :data:`HEARTBEAT_SECONDS` at most): ``waiting_on`` names the model calls in
    flight and how long each has waited (``"root-model (depth 0) 12.0 s"``).
    """

    kind: ProgressKind
    depth: int
    calls: int
    attempts: int
    tokens: int
    cost_usd: str
    elapsed_seconds: float
    sub_calls: int = 0
    iteration: int = 0
    max_iterations: int = 0
    waiting_on: str = ""


ProgressCallback = Callable[[ProgressEvent], Awaitable[None]]
"""Called with each :class:`ProgressEvent`; its errors are logged, never raised into the query."""
