"""Lenient answer parsers and the scores they feed.

Every method's answer is free text; the parsers look for the requested shape
anywhere in it (the last ``FINAL(...)``-style payload is not required), so a
chatty but right answer still scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from benchmarks.eval.questions import Question

__all__ = ["Score", "parse_integer", "parse_names", "parse_path_lines", "score"]

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": round(self.value, 4),
            "exact": self.exact,
            "parsed": self.parsed,
            "detail": self.detail,
        }


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


def parse_integer(answer: str) -> int | None:
    found = _INT.findall(answer)
    return int(found[0]) if found else None


def score(question: Question, answer: str) -> Score:
    exp = question.expected
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
