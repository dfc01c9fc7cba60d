"""Fused ranked search: BM25 over definitions, a ranked grep over the files' words, and the
callers of a name the question asks about, combined by weighted reciprocal-rank fusion.

Each signal alone loses somewhere (benchmarks/eval/RESULTS.md): BM25 over
definitions finds the function whose name and doc match, but not the function
whose body holds the question's words; a ranked grep over the texts finds that
one, but ranks files, not definitions; neither lists the call sites an "impact"
question ("what breaks if ``f`` changes?") is answered by. The three lists are
fused by reciprocal rank, ``sum(weight / (RRF_K + rank))``: rank fusion needs
no score calibration between BM25 and word counts, and a hit two signals agree
on beats a hit one signal puts first. The weights depend on what the question
asks (:func:`intent`): a use or impact question over a name spelled as code
is answered by that name's callers alone.

Tests and fixtures rank below the code they exercise (their fused score is
scaled by ``TEST_WEIGHT``) unless the question asks about tests;
``exclude_tests`` drops them outright. Every hit lists the signals that found it.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rlm_mcp.errors import SearchError
from rlm_mcp.index.model import Definition, DefQuery
from rlm_mcp.index.search import ranked
from rlm_mcp.index.search.globs import GlobSpec, glob_regex
from rlm_mcp.index.search.ranked import (
    SearchHit,
    clip_snippet,
    def_hit,
    enclosing_uses,
    innermost,
    looks_like_identifier,
)
from rlm_mcp.index.search.ranking import STOPWORDS
from rlm_mcp.index.store.base import IndexStore

__all__ = [
    "RRF_K",
    "SIGNALS",
    "Intent",
    "content_words",
    "intent",
    "is_test_path",
    "search",
    "word_grep",
]

SIGNALS = ("bm25", "grep", "callers")
RRF_K = 5
"""The rank offset of reciprocal-rank fusion. Cormack et al. (2009) use 60 for long lists of
documents; here the first hit is what a locating question is judged by, and on the dev set
(``python -m benchmarks.fusion_bench``) 5 to 10 beat 20 and 60 on every kind: a small
offset keeps each list's first hits ahead of hits that two lists rank low."""
WEIGHTS = {"bm25": 1.5, "grep": 1.0, "callers": 0.5}
"""BM25 over definitions knows names, signatures and docs; the grep knows bodies. Weighted
1.5 to 1, the fusion beat the ranked-grep floor on every dev kind (1.0 lost on locate,
2.0 on how)."""
TEST_WEIGHT = 0.5
GREP_FILES = 300
"""Files whose text the ranked grep reads to confirm and place its words."""
GREP_WORDS = 12
COMMON_FILES = 2000
"""A word in more files than this and than half of them is left out of the grep's count."""
CALLER_USES = 400
COMMENT_GAP = 2
"""A line this close above a definition, outside any comment, is its decorator or keyword."""
COMMENT_RUN = 120
"""The longest comment block (a JSDoc with examples) taken to document the definition below."""
_COMMENTISH = re.compile(r"^\s*(?:$|\*|/\*|//|#|@|--|;|\"\"\"|\'\'\'|export\s|\*/)")

_WORD = re.compile(r"[a-z0-9_]+")
_QUESTION_WORDS = frozenset(
    """about above after also answer before break breaks broken change changed changes
    does each every first here line lines many much must need needs path paths return
    returns returned type types value values work works would""".split()  # noqa: SIM905
)
_IMPACT = re.compile(
    r"\b(?:break|breaks|broke|broken|breaking|impact\w*|affect\w*|callers?|call\s+sites?|"
    r"calls|called\s+(?:by|from)|uses|used\s+(?:by|in|from)|usages?|users?\s+of|"
    r"depend\w*|referenc\w*|who\s+(?:calls|uses)|changed?\s+(?:its|the)\s+\w+)\b",
    re.IGNORECASE,
)
_TESTS_ASKED = re.compile(r"\b(?:tests?|testing|tested|fixtures?|specs?|mocks?)\b", re.I)
_TICKED = re.compile(r"`([^`\s]+)`")
_IDENT = re.compile(r"(?<![\w/.])[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?![\w/])")
_FILE_EXT = re.compile(r"\.(?:[a-z]{1,4}|tsx|jsx|java|json|yaml|toml)$")
_TEST_DIRS = frozenset(
    [
        "test",
        "tests",
        "__tests__",
        "testing",
        "testdata",
        "test_data",
        "spec",
        "specs",
        "fixtures",
        "fixture",
        "__fixtures__",
        "__mocks__",
        "mocks",
        "e2e",
    ]
)
_TEST_FILE = re.compile(
    r"(?:^test_.*\.py|.*_test\.(?:py|go|rs|c|cc|cpp)|^conftest\.py|"
    r".*\.(?:test|spec)\.[cm]?[jt]sx?|.*(?:Test|Tests|IT)\.(?:java|kt|scala|cs))$"
)


@dataclass(frozen=True, slots=True)
class Intent:
    """What a question asks for: the names it spells as code, whether it asks who uses or
    what breaks with them (``impact``), and whether it asks about tests."""

    identifiers: tuple[str, ...]
    impact: bool
    tests: bool


def _is_pathlike(token: str) -> bool:
    return "/" in token or "\\" in token or bool(_FILE_EXT.search(token.lower()))


def intent(query: str) -> Intent:
    """The :class:`Intent` of ``query`` (backticked names first, then names written as code;
    file paths, backticked or not, are not names)."""
    idents: dict[str, None] = {}
    for tok in _TICKED.findall(query):
        tok = tok.strip("()[]{},;:")
        if tok and not _is_pathlike(tok) and re.fullmatch(r"[A-Za-z_$][\w$.:]*", tok):
            idents.setdefault(tok.replace("::", "."), None)
    unticked = _TICKED.sub(" ", query)
    for tok in _IDENT.findall(unticked):
        if len(tok) >= 3 and looks_like_identifier(tok) and not _is_pathlike(tok):
            idents.setdefault(tok, None)
    names = tuple(i for i in idents if len(i.rsplit(".", 1)[-1]) >= 2)
    return Intent(
        names, bool(names) and bool(_IMPACT.search(query)), bool(_TESTS_ASKED.search(query))
    )


def content_words(query: str) -> list[str]:
    """The distinct lower-case words of ``query`` a grep looks for, in order: at least three
    characters, no stop words or question words, no numbers; a name written as code
    also gives its parts (``load_config`` → load_config, load, config)."""
    seen: dict[str, None] = {}
    for raw in _WORD.findall(query.lower()):
        parts = [raw, *(p for p in raw.split("_") if p != raw)]
        for w in parts:
            if len(w) >= 3 and not w.isdigit() and w not in STOPWORDS and w not in _QUESTION_WORDS:
                seen.setdefault(w, None)
    return list(seen)[:GREP_WORDS]


def is_test_path(path: str) -> bool:
    """Whether ``path`` is a test, a fixture or test data, by the common layouts of Python,
    JavaScript/TypeScript, Go, Rust, C and the JVM languages."""
    parts = path.split("/")
    if any(p.lower() in _TEST_DIRS for p in parts[:-1]):
        return True
    return bool(_TEST_FILE.match(parts[-1]))


@dataclass(frozen=True, slots=True)
class GrepFile:
    """A file of the ranked grep: the distinct words it holds and its best line."""

    path: str
    words: int
    line: int
    on_line: int


def word_grep(
    store: IndexStore, words: Sequence[str], limit: int, path_rx: re.Pattern[str] | None = None
) -> list[GrepFile]:
    """Files ranked by how many distinct ``words`` their text holds (where a word starts,
    any case: see :func:`_word_start`), ties by the most words on one line, then path; each with the first line
    holding the most. Empty when the store has no text index yet (nothing to narrow by)."""
    ascii_words = [w for w in words if w.isascii() and len(w) >= 3]
    if not ascii_words:
        return []
    counts: Counter[str] = Counter()
    common = 0  # words left out of the counts (each may still be found in any file)
    total = store.text_index_progress()[1]
    for w in ascii_words:
        cands = store.grep_candidates([[w]])
        if cands is None:
            return []
        if len(cands) > max(COMMON_FILES, total // 2):
            common += 1
            continue  # in most files: it cannot rank them, and counting it costs the most
        counts.update(p for p in cands if path_rx is None or path_rx.match(p))
    if not counts:
        return []
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(order) > GREP_FILES:
        # the trigram counts are upper bounds: read every file tied with the last one kept
        cut = order[GREP_FILES - 1][1]
        order = [kv for kv in order if kv[1] >= cut][: GREP_FILES * 2]
    rxs = {w: _word_start(w) for w in ascii_words}
    found: list[GrepFile] = []
    kept: list[tuple[int, int, str]] = []  # the ``limit`` best sort keys so far
    for path, count in order:
        bound = count + common
        if len(kept) == limit and kept[-1] < (-bound, -bound, path):
            # Exact: ``order`` runs by count, then path, and a file's words and words on
            # one line are at most its count plus the common words, so no file after
            # this one enters the top ``limit``.
            break
        text = store.text(path)
        if text is None:
            continue
        present, line, on_line = scan_words(text, ascii_words, rxs)
        if present:
            found.append(GrepFile(path, len(present), line, on_line))
            bisect.insort(kept, (-len(present), -on_line, path))
            del kept[limit:]
    found.sort(key=lambda g: (-g.words, -g.on_line, g.path))
    return found[:limit]


def _word_start(word: str) -> re.Pattern[str]:
    """``word`` where a word starts: after a non-alphanumeric character (``_`` counts), or
    as the next part of a camelCase name (``isLive``); any case (``live`` is not in
    ``alive``)."""
    head, rest = re.escape(word[0]), re.escape(word[1:])
    upper = re.escape(word[0].upper())
    return re.compile(rf"(?:(?<![A-Za-z0-9])(?i:{head})|(?<=[a-z0-9]){upper})(?i:{rest})")


_ODD_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
"""Line breaks of ``str.splitlines`` besides ``\\n`` and ``\\r\\n``."""
_LOWER_OR_DIGIT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ") | _LOWER_OR_DIGIT


def scan_words(
    text: str, words: Sequence[str], rxs: dict[str, re.Pattern[str]]
) -> tuple[list[str], int, int]:
    """(the ``words`` that start a word in ``text``, in order; the first line holding the
    most of them; how many it holds), as :func:`_word_start` and :func:`_best_line` judge.

    Those run a regex over every line, a millisecond and a half a file at monorepo scale.
    Here each word's occurrences come from ``str.find`` over the lowered text and the
    character before each decides, which is the regex's own test; a text whose lowering
    changes its length, whose lines ``splitlines`` breaks elsewhere than at newlines, or a
    word not in lower case takes the regex path.
    """
    low = text.lower()
    maybe = [w for w in words if w in low]
    if not maybe:
        return [], 1, 0
    if (
        len(low) != len(text)
        or any(w != w.lower() for w in maybe)
        or text.count("\r") != text.count("\r\n")
        or any(c in text for c in _ODD_BREAKS)
    ):
        present = [w for w in maybe if rxs[w].search(text)]
        return (present, *_best_line(text, present, rxs)) if present else ([], 1, 0)
    hits: list[tuple[int, int]] = []
    present = []
    for i, w in enumerate(maybe):
        upper, before = w[0].upper(), len(hits)
        pos = low.find(w)
        while pos >= 0:
            prev = text[pos - 1] if pos else ""
            if prev not in _ALNUM or (prev in _LOWER_OR_DIGIT and text[pos] == upper):
                hits.append((pos, i))
            pos = low.find(w, pos + 1)
        if len(hits) > before:
            present.append(w)
    if not hits:
        return [], 1, 0
    hits.sort()
    best, best_n = 1, 0
    line, last = 1, 0
    on_line: set[int] = set()
    for pos, i in hits:
        step = low.count("\n", last, pos)
        if step:
            line, on_line = line + step, set()
        last = pos
        on_line.add(i)
        if len(on_line) > best_n:
            best, best_n = line, len(on_line)
    return present, best, best_n


def _best_line(text: str, words: Sequence[str], rxs: dict[str, re.Pattern[str]]) -> tuple[int, int]:
    """(1-based line, words on it) of the first line holding the most of ``words``; the
    substring test is cheap and comes first, the word-start regex confirms."""
    best, best_n = 1, 0
    for n, line in enumerate(text.splitlines(), 1):
        low = line.lower()
        maybe = [w for w in words if w in low]
        if len(maybe) <= best_n:
            continue
        k = sum(1 for w in maybe if rxs[w].search(line))
        if k > best_n:
            best, best_n = n, k
            if k == len(words):
                break
    return best, best_n


class _Files:
    """Each file's definitions and lines, read once per search."""

    def __init__(self, store: IndexStore) -> None:
        self._store = store
        self._defs: dict[str, list[Definition]] = {}
        self._lines: dict[str, list[str]] = {}

    def defs(self, path: str) -> list[Definition]:
        got = self._defs.get(path)
        if got is None:
            got = self._defs[path] = self._store.find_defs(DefQuery("path", path))
        return got

    def lines(self, path: str) -> list[str]:
        got = self._lines.get(path)
        if got is None:
            got = self._lines[path] = (self._store.text(path) or "").splitlines()
        return got

    def line(self, path: str, n: int) -> str:
        lines = self.lines(path)
        return lines[n - 1] if 0 < n <= len(lines) else path

    def owner(self, path: str, line: int) -> Definition | None:
        """The definition a line belongs to: the innermost one holding it, else the one its
        comment block documents (the comment and decorator lines run down to it)."""
        defs = self.defs(path)
        inner = innermost(defs, line)
        starts = {d.start_line: d for d in defs if d.start_line > line}
        if not starts:
            return inner
        lines = self.lines(path)
        n = line
        while n <= len(lines) and n - line <= COMMENT_RUN:
            if n in starts:
                below = starts[n]
                return below if inner is None or below.start_line <= inner.end_line else inner
            if n > line and not _COMMENTISH.match(lines[n - 1]):
                break
            n += 1
        # the line is the definition's own first line after a decorator or export keyword
        below_any = [d for d in starts.values() if d.start_line <= line + COMMENT_GAP]
        if inner is None and below_any:
            return min(below_any, key=lambda d: d.start_line)
        return inner


def _grep_hits(files: Iterable[GrepFile], known: _Files) -> list[SearchHit]:
    out: list[SearchHit] = []
    for g in files:
        owner = known.owner(g.path, g.line)
        if owner is not None:
            out.append(def_hit(owner))
        else:
            snippet = clip_snippet(known.line(g.path, g.line))
            out.append(SearchHit(g.path, g.line, g.line, "", "line", snippet, 0.0))
    return out


def _caller_hits(
    store: IndexStore, names: Sequence[str], path_rx: re.Pattern[str] | None, known: _Files
) -> list[SearchHit]:
    """The definitions that use each of ``names`` (not the name's own definitions), the one
    with the most uses first; a use at the top level of a file is a line hit."""
    uses: Counter[tuple[str, int, str]] = Counter()
    first: dict[tuple[str, int, str], SearchHit] = {}
    for name in names[:3]:
        short = name.rsplit(".", 1)[-1]
        rx = path_rx.pattern if path_rx is not None else None
        for ref, d in enclosing_uses(store, short, CALLER_USES, rx):
            if d is not None and d.name == short:
                continue  # the definition itself, or a recursive call in it
            if d is None:
                key = (ref.path, ref.line, "")
                if key not in first:
                    snip = clip_snippet(known.line(ref.path, ref.line))
                    first[key] = SearchHit(ref.path, ref.line, ref.line, "", "line", snip, 0.0)
            else:
                key = (d.path, d.start_line, d.qualname)
                first.setdefault(key, def_hit(d))
            uses[key] += 1
    order = sorted(uses, key=lambda k: (-uses[k], k[0], k[1]))
    return [first[k] for k in order]


def _key(h: SearchHit) -> tuple[str, int, str]:
    return (h.path, h.line, h.qualname)


def search(
    store: IndexStore,
    query: str,
    limit: int = 20,
    glob: GlobSpec | None = None,
    *,
    exclude_tests: bool = False,
) -> list[SearchHit]:
    """Definitions (and lines) for a question or an identifier, best first, fused from BM25,
    a ranked grep and the callers of a name the question asks about (see the module)."""
    if not isinstance(query, str) or not query.strip():
        raise SearchError("the search query is empty")
    limit = max(1, int(limit))
    what = intent(query)
    rx = glob_regex(glob) if glob else None
    depth = max(30, limit * 3)
    known = _Files(store)
    lists: dict[str, list[SearchHit]] = {
        "bm25": ranked.search(store, query, depth, glob, callers=False),
        "grep": _grep_hits(word_grep(store, content_words(query), depth, rx), known),
    }
    if what.identifiers:
        lists["callers"] = _caller_hits(store, what.identifiers, rx, known)
    weights = WEIGHTS
    fused: dict[tuple[str, int, str], float] = {}
    found_by: dict[tuple[str, int, str], list[str]] = {}
    best: dict[tuple[str, int, str], SearchHit] = {}
    for signal in SIGNALS:
        if not weights[signal]:
            continue
        seen: set[tuple[str, int, str]] = set()
        rank = 0
        for h in lists.get(signal, ()):
            k = _key(h)
            if k in seen:
                continue
            seen.add(k)
            rank += 1
            if exclude_tests and is_test_path(h.path):
                continue
            fused[k] = fused.get(k, 0.0) + weights[signal] / (RRF_K + rank)
            found_by.setdefault(k, []).append(signal)
            best.setdefault(k, h)
    if not what.tests:
        for k in fused:
            if is_test_path(k[0]):
                fused[k] *= TEST_WEIGHT
    order = sorted(fused, key=lambda k: (-fused[k], k[0], k[1]))
    if what.impact and any("callers" in found_by[k] for k in order):
        # The uses are the answer: a hit only BM25 or the grep found (the name's own
        # definition among them) would pad the list with look-alikes (dev set: F1 0.80
        # with the definitions kept, 0.92 without).
        order = [k for k in order if "callers" in found_by[k]]
    return [
        replace(best[k], score=round(fused[k] * 1000, 3), signals=tuple(found_by[k]))
        for k in order[:limit]
    ]
