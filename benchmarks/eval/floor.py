"""The ranked-grep floor: plain case-insensitive grep over the question's words.

What a user gets from ``rg -i`` and no thought, independent of the engine and
its index: the question's words (lower-cased, stop words and the question
template's own words removed), files ranked by how many distinct words they
contain (ties: the file whose best line holds more of them, then the path),
and for each top file the first line holding the most of them. A question
with a backticked identifier (``impact``) is answered with the lines that
use the identifier as a whole word, files in the same order.

Any method worth running must beat this on the understanding kinds; the
issue calls it "never worse than search".
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.eval.phrasing import TEMPLATE_WORDS
from benchmarks.eval.sourcetext import LANGUAGES

__all__ = ["STOP_WORDS", "FloorHit", "question_words", "ranked_grep", "ranked_grep_answer"]

STOP_WORDS = frozenset(
    """a an and any are as at be been but by can could did do does doing done for from get
    gets got has have how i if in into is it its me my not of on or our should so some that
    the their them then there these they this those to was we were what when where which while
    who why will with would you your answer path paths line lines file files one per most
    first best example up each""".split()  # noqa: SIM905
) | {w for w in TEMPLATE_WORDS if len(w) > 2}
_WORD = re.compile(r"[a-z0-9_]+")
_EXTENSIONS = tuple(LANGUAGES)
MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class FloorHit:
    path: str
    line: int
    words: int  # distinct question words in the file


def question_words(question: str) -> list[str]:
    """Distinct lower-cased words of ``question`` worth grepping for, in order."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(question.lower()):
        if len(w) >= 3 and w not in STOP_WORDS and not w.isdigit():
            seen.setdefault(w, None)
    return list(seen)


@functools.lru_cache(maxsize=2)
def _corpus(root: str) -> tuple[tuple[str, str], ...]:
    """(path, lower-cased text) of every source file under ``root``, path order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "node_modules")
        for name in sorted(filenames):
            if not name.endswith(_EXTENSIONS):
                continue
            full = os.path.join(dirpath, name)
            try:
                with open(full, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            out.append((os.path.relpath(full, root).replace(os.sep, "/"), text.lower()))
    out.sort()
    return tuple(out)


def _best_line(text: str, words: Sequence[str]) -> tuple[int, int]:
    """(1-based line, distinct words on it) of the first line holding the most words."""
    best, best_n = 1, 0
    for n, line in enumerate(text.splitlines(), 1):
        k = sum(1 for w in words if w in line)
        if k > best_n:
            best, best_n = n, k
    return best, best_n


def ranked_grep(root: Path, question: str, k: int = 5) -> list[FloorHit]:
    """The top ``k`` files for ``question``'s words, each with its best line."""
    words = question_words(question)
    if not words:
        return []
    scored = []
    for path, text in _corpus(str(root)):
        n = sum(1 for w in words if w in text)
        if n:
            scored.append((n, path, text))
    scored.sort(key=lambda t: -t[0])
    if len(scored) > k:
        # only files that tie with the k-th need their lines read to break the tie
        cut = scored[k - 1][0]
        scored = [t for t in scored if t[0] >= cut]
    ranked = []
    for n, path, text in scored:
        line, on_line = _best_line(text, words)
        ranked.append((-n, -on_line, path, line))
    ranked.sort()
    return [FloorHit(path, line, -neg) for neg, _, path, line in ranked[:k]]


def _identifier_lines(root: Path, ident: str, order: Sequence[str]) -> list[str]:
    rx = re.compile(rf"(?<![\w$]){re.escape(ident.lower())}(?![\w$])")
    rank = {p: i for i, p in enumerate(order)}
    files = sorted(_corpus(str(root)), key=lambda t: (rank.get(t[0], len(rank)), t[0]))
    out: list[str] = []
    for path, text in files:
        if ident.lower() not in text:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if rx.search(line):
                out.append(f"{path}:{n}")
                if len(out) >= MAX_LINES:
                    return out
    return out


def ranked_grep_answer(root: Path, question: str, k: int = 5) -> str:
    """The floor's answer text: ``path:line`` per line, best first."""
    hits = ranked_grep(root, question, k)
    ident = re.search(r"`([A-Za-z_$][\w$]*)`", question)
    if ident:
        return "\n".join(_identifier_lines(root, ident.group(1), [h.path for h in hits]))
    return "\n".join(f"{h.path}:{h.line}" for h in hits)
