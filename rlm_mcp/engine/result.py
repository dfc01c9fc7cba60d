"""What a query returns: the answer, how it ended, what it cost, and its evidence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlm_mcp.budget import Usage
from rlm_mcp.index.search.ranked import SearchHit

__all__ = [
    "Candidate",
    "Citation",
    "Evidence",
    "EvidenceLog",
    "Outcome",
    "RLMResult",
    "Status",
    "also_relevant",
]

Candidate = SearchHit
"""A location ranked search found for the question before any model call."""

Status = Literal["completed", "limit_reached", "error"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A line range of a file that the query's code looked at (1-based, inclusive)."""

    path: str
    start: int
    end: int

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.start}"
            if self.start == self.end
            else f"{self.path}:{self.start}-{self.end}"
        )


@dataclass(frozen=True, slots=True)
class Citation:
    """A path, ``path:line`` or symbol the answer names, and whether the index has it."""

    text: str
    verified: bool
    nearest: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "verified": self.verified, "nearest": list(self.nearest)}


class EvidenceLog:
    """Collects ranges as code reads them; merges overlapping ranges per file."""

    def __init__(self, max_ranges: int = 10_000) -> None:
        self._ranges: dict[str, list[tuple[int, int]]] = {}
        self._count = 0
        self._max = max_ranges

    def add(self, path: str, start: int, end: int) -> None:
        if self._count >= self._max or start < 1:
            return
        self._ranges.setdefault(path, []).append((start, max(start, end)))
        self._count += 1

    def merged(self, limit: int = 200) -> list[Evidence]:
        out: list[Evidence] = []
        for path in sorted(self._ranges):
            spans = sorted(self._ranges[path])
            cur_s, cur_e = spans[0]
            for s, e in spans[1:]:
                if s <= cur_e + 1:
                    cur_e = max(cur_e, e)
                else:
                    out.append(Evidence(path, cur_s, cur_e))
                    cur_s, cur_e = s, e
            out.append(Evidence(path, cur_s, cur_e))
        return out[:limit]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one level of a query ended; the top level's becomes the :class:`RLMResult`.

    The fields mean what :class:`RLMResult`'s of the same name mean.
    """

    answer: str
    status: Status
    _: KW_ONLY
    limit: str | None = None
    error: str | None = None
    iterations: int = 0
    citations: list[Citation] = field(default_factory=list)
    error_kind: str | None = None


@dataclass(slots=True)
class RLMResult:
    """The outcome of one query.

    Attributes:
        answer: the final answer, or the best partial answer when a limit or an
            error stopped the query ("" when there is none).
        status: ``completed``; ``limit_reached`` (``limit`` names it); ``error``
            (``error`` says what failed).
        error_kind: how the provider failed when it ended or stopped the
            query (:attr:`~rlm_mcp.errors.BackendError.kind`: ``rate_limited``,
            ``connection_lost``, ``unreachable``, ``timeout``, ``bad_response``,
            ``auth``...); also ``rate_limited`` with ``limit_reached`` when
            ``max_wall_seconds`` ran out waiting on HTTP 429. ``None`` otherwise.
        max_depth_reached: 0 when no ``rlm_query`` ran, 1 for one nested level...
        evidence: file ranges the code read, merged.
        trajectory: the JSON Lines file with every step, when one was written.
        candidates: what ranked search found for the question before the first
            model call (shown to the model, and the fallback answer).
        citations: the paths, ``path:line`` and symbols the answer names, each
            checked against the index.
        located: the places ``repo.locate`` judged for the question (strategies
            ``locate-first`` and ``locate-only``), best first, with the reasons.
        session: the handle that continues this query's session (set by the
            service, which keeps sessions; never written to trajectories).
    """

    answer: str
    status: Status
    limit: str | None = None
    error: str | None = None
    error_kind: str | None = None
    usage: Usage = field(default_factory=Usage)
    iterations: int = 0
    max_depth_reached: int = 0
    sub_calls: int = 0
    wall_seconds: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    trajectory: Path | None = None
    candidates: list[Candidate] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    located: list[dict[str, Any]] = field(default_factory=list)
    session: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "status": self.status,
            "limit": self.limit,
            "error": self.error,
            "error_kind": self.error_kind,
            "usage": self.usage.as_dict(),
            "iterations": self.iterations,
            "max_depth_reached": self.max_depth_reached,
            "sub_calls": self.sub_calls,
            "wall_seconds": round(self.wall_seconds, 3),
            "evidence": [str(e) for e in self.evidence],
            "trajectory": str(self.trajectory) if self.trajectory else None,
            "candidates": [c.as_dict() for c in self.candidates],
            "citations": [c.as_dict() for c in self.citations],
            "located": list(self.located),
            "also_relevant": also_relevant(self.answer, self.located),
        }


_CITE = re.compile(r"([\w./\-]+\.[A-Za-z0-9]+):(\d+)")


def also_relevant(answer: str, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The judged locations the answer does not cite (by file and line range), in rank order:
    shown after the answer as "also relevant (ranked)", never mixed into its claims."""
    cited = [(p, int(n)) for p, n in _CITE.findall(answer)]
    out = []
    for item in items:
        if not item.get("relevant"):
            continue
        start, end = int(item["line"]), int(item.get("end_line") or item["line"])
        hit = any(
            (p == item["path"] or item["path"].endswith("/" + p)) and start <= n <= end
            for p, n in cited
        )
        if not hit and item["path"] not in answer:
            out.append(item)
    return out
