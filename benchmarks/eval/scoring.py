"""Lenient answer parsers and the scores they feed.

Every method's answer is free text; the parsers look for the requested shape
anywhere in it (the last ``FINAL(...)``-style payload is not required), so a
chatty but right answer still scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.eval.questions import Question

__all__ = [
    "RECALL_KS",
    "Score",
    "cited_paths",
    "parse_citations",
    "parse_integer",
    "parse_names",
    "parse_path_lines",
    "recall_at",
    "score",
]

RECALL_KS = (1, 3, 5)
_SOURCE_EXT = r"(?:pyi|pyx|pxd|py|cpp|cxx|cc|hpp|hh|c|h|mjs|cjs|jsx|js|mts|cts|tsx|ts|go|rs)"
# A path (at least a file name with a source extension), optionally followed by a line:
# path:12, path:12-30, path, line 12, path at line 12, path#L12, path L12.
_CITATION = re.compile(
    rf"(?P<path>(?:[\w.@+-]+[/\\])*[\w.@+-]*\w\.{_SOURCE_EXT})(?![\w/\\])"
    r"(?:['\"`]?\)?\s*(?::|,?\s*\(?(?:at\s+|on\s+)?lines?\s*|#L|\s+L)\s*(?P<line>\d+))?",
    re.IGNORECASE,
)
_PATH_LINE = re.compile(
    r"(?P<path>[\w./\\-]+\.py)['\"`]?\s*(?::|,?\s*(?:at\s+)?line\s*|#L|\s+L)\s*(?P<line>\d+)",
    re.IGNORECASE,
)
_IDENT = re.compile(r"[A-Za-z_][\w.]*")
_INT = re.compile(r"(?<![\w.])-?\d+(?![\w.])")
_STOP = frozenset(
    {
        "and",
        "or",
        "the",
        "function",
        "functions",
        "method",
        "methods",
        "class",
        "classes",
        "none",
        "answer",
        "final",
        "base",
        "bases",
        "inherits",
        "from",
        "object",
    }
)


@dataclass(frozen=True, slots=True)
class Score:
    """``value`` in [0, 1] is what accuracy averages; ``exact`` is all-or-nothing."""

    value: float
    exact: bool
    parsed: Any
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": round(self.value, 4),
            "exact": self.exact,
            "parsed": self.parsed,
            "detail": self.detail,
        }
        if self.metrics:
            out["metrics"] = {k: round(v, 4) for k, v in self.metrics.items()}
        return out


def _norm_path(path: str) -> str:
    path = path.replace("\\", "/").strip().strip("`'\"")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def parse_path_lines(answer: str) -> list[tuple[str, int]]:
    return [(_norm_path(m["path"]), int(m["line"])) for m in _PATH_LINE.finditer(answer)]


def _same_file(got: str, want: str) -> bool:
    return got == want or got.endswith("/" + want) or (want.endswith("/" + got) and "/" in got)


def parse_names(answer: str) -> list[str]:
    """Bare identifiers from a comma/newline/'and'-separated list, in order, deduplicated."""
    text = answer.replace("`", " ").replace("*", " ")
    items = re.split(r"[,\n;]|\band\b", text)
    out: list[str] = []
    for item in items:
        item = re.sub(r"[\w./-]+\.py(?::\d+)?", " ", item)  # drop path citations
        for tok in _IDENT.findall(item):
            bare = tok.rstrip(".").rsplit(".", 1)[-1]
            if not bare or bare.lower() in _STOP or bare.isdigit():
                continue
            if bare not in out:
                out.append(bare)
            break  # one name per list item
    return out


def parse_citations(answer: str) -> list[tuple[str, int | None]]:
    """Every cited source path, with its line when one follows, in order of appearance."""
    return [
        (_norm_path(m["path"]), int(m["line"]) if m["line"] else None)
        for m in _CITATION.finditer(answer)
    ]


def cited_paths(answer: str) -> list[str]:
    """Distinct cited paths in order of first appearance."""
    return list(dict.fromkeys(p for p, _ in parse_citations(answer)))


def recall_at(paths: Sequence[str], reference: Sequence[str], k: int) -> float:
    """Share of ``reference`` among the first ``k`` distinct ``paths``.

    The denominator is ``min(k, len(reference))``, so a perfect ranked answer
    scores 1 at every k even when the reference set is larger than k.
    """
    if not reference:
        return 0.0
    top = paths[:k]
    hit = sum(1 for ref in reference if any(_same_file(p, ref) for p in top))
    return hit / min(k, len(reference))


def _recalls(paths: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    return {f"recall@{k}": recall_at(paths, reference, k) for k in RECALL_KS}


def _score_locations(exp: dict[str, Any], answer: str) -> Score:
    cites = parse_citations(answer)
    paths = list(dict.fromkeys(p for p, _ in cites))
    metrics = _recalls(paths, [exp["path"]])
    first = next(((p, line) for p, line in cites if line is not None), None)
    exact = (
        first is not None
        and _same_file(first[0], exp["path"])
        and int(exp["start"]) <= first[1] <= int(exp["end"])
    )
    metrics["exact"] = 1.0 if exact else 0.0
    if not paths:
        detail = "no path found"
    elif exact:
        detail = "ok"
    elif metrics["recall@1"]:
        detail = "right file, no line in range" if first else "right file, no line"
    else:
        detail = f"path rank >{len(paths)}" if not metrics["recall@5"] else "right file in top 5"
    parsed = [f"{p}:{line}" if line else p for p, line in cites[:10]]
    return Score(metrics["exact"], exact, parsed, detail, metrics)


def _score_paths(exp: dict[str, Any], answer: str) -> Score:
    paths = cited_paths(answer)
    reference = list(exp["paths"])
    metrics = _recalls(paths, reference)
    metrics["primary@1"] = recall_at(paths, [exp["path"]], 1)
    value = metrics["recall@5"]
    detail = (
        "no path found"
        if not paths
        else f"{value * min(5, len(reference)):.0f}/" + str(min(5, len(reference)))
    )
    return Score(value, value == 1.0, paths[:10], detail, metrics)


def _caller_items(answer: str) -> list[tuple[str | None, list[tuple[str, int | None]]]]:
    """List items of an answer: each item's first name (or None) and its citations."""
    items = re.split(r"[,\n;]|\band\b", answer.replace("`", " ").replace("*", " "))
    out = []
    for item in items:
        cites = parse_citations(item)
        rest = _CITATION.sub(" ", item)
        name = next(
            (
                tok.rstrip(".").rsplit(".", 1)[-1]
                for tok in _IDENT.findall(rest)
                if tok.rstrip(".").rsplit(".", 1)[-1].lower() not in _STOP
                and not tok.isdigit()
                and tok.lower() not in ("line", "lines", "at", "in", "defined")
            ),
            None,
        )
        if name or cites:
            out.append((name, cites))
    return out


def _score_callers(exp: dict[str, Any], answer: str) -> Score:
    callers = list(exp["callers"])
    items = _caller_items(answer)
    hit: set[int] = set()
    correct = 0
    for name, cites in items:
        matched = set()
        if name:
            matched |= {i for i, c in enumerate(callers) if c["name"].lower() == name.lower()}
        for path, line in cites:
            if line is None:
                continue
            inside = [
                i
                for i, c in enumerate(callers)
                if _same_file(path, c["path"]) and int(c["start"]) <= line <= int(c["end"])
            ]
            if inside:  # the innermost caller whose lines hold the citation
                matched.add(max(inside, key=lambda i: int(callers[i]["start"])))
        if matched:
            correct += 1
            hit |= matched
    paths = cited_paths(answer)
    metrics = _recalls(paths, list(exp["paths"]))
    if not items:
        return Score(0.0, False, [], "no names or locations found", metrics)
    precision = correct / len(items)
    recall = len(hit) / len(callers)
    f1 = 0.0 if not hit else 2 * precision * recall / (precision + recall)
    metrics.update(precision=precision, recall=recall)
    parsed = [n or (f"{c[0][0]}:{c[0][1]}" if c else "") for n, c in items[:20]]
    exact = len(hit) == len(callers) and correct == len(items)
    return Score(f1, exact, parsed, f"P={precision:.2f} R={recall:.2f}", metrics)


def parse_integer(answer: str) -> int | None:
    found = _INT.findall(answer)
    return int(found[0]) if found else None


def score(question: Question, answer: str) -> Score:
    exp = question.expected
    if question.format == "locations":
        return _score_locations(exp, answer)
    if question.format == "paths":
        return _score_paths(exp, answer)
    if question.format == "callers":
        return _score_callers(exp, answer)
    if question.format == "path_line":
        pairs = parse_path_lines(answer)
        if not pairs:
            return Score(0.0, False, None, "no path:line found")
        path, line = pairs[0]
        same = _same_file(path, exp["path"])
        inside = same and int(exp["start"]) <= line <= int(exp["end"])
        detail = "ok" if inside else ("right file, wrong line" if same else "wrong file")
        return Score(1.0 if inside else 0.0, inside, f"{path}:{line}", detail)
    if question.format == "name_list":
        want = {n.lower() for n in exp["names"]}
        got = {n.lower() for n in parse_names(answer)}
        if not got:
            return Score(0.0, False, [], "no names found")
        tp = len(want & got)
        precision = tp / len(got)
        recall = tp / len(want)
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        return Score(f1, want == got, sorted(got), f"P={precision:.2f} R={recall:.2f}")
    if question.format == "integer":
        value = parse_integer(answer)
        ok = value is not None and value == int(exp["count"])
        return Score(1.0 if ok else 0.0, ok, value, "ok" if ok else f"want {exp['count']}")
    raise ValueError(f"unknown answer format {question.format!r}")
