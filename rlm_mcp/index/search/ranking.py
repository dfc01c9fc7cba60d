"""Words for ranked search: identifiers split the way people say them.

``parseHTTPResponse``, ``parse_http_response`` and "parse the HTTP response"
should all find the same function, so every name, path and query goes
through :func:`words`: CamelCase and snake_case split, lower-cased. The
full-text index (BM25 with Porter stemming, in the store) then ranks
definitions by their name words (weighted most), their path, and their
signature, docstring and the comments inside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "STOPWORDS",
    "DocRow",
    "def_doc_rows",
    "doc_rows",
    "file_doc_row",
    "query_terms",
    "words",
]

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_COMMENT = re.compile(r"^\s*(?:#+|//+|/\*+|\*+|--|;+|%+|\"\"\"|''')\s?(.*?)(?:\*/|\"\"\"|''')?\s*$")
_QUOTES = ('"""', "'''")
BODY_CHARS = 2_000
HEAD_LINES = 60

STOPWORDS = frozenset(
    """a an and any are as at be been but by can code could did do does doing done for from
    get gets got has have how i if in into is it its me my not of on or our should so some
    that the their them then there these they this those to uses using via was we were what
    when where which while who why will with would you your find show tell explain handle
    handled handles implemented implement implements function functions method methods class
    classes file files repository repo part logic""".split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` with identifiers split (``getHTTPCode`` → get, http, code)."""
    return " ".join(_CAMEL.findall(text)).lower().split()


def _joined_words(text: str) -> str:
    """:func:`words` as one space-separated string (what the full-text index stores)."""
    return " ".join(_CAMEL.findall(text)).lower()


def query_terms(question: str) -> list[str]:
    """The words of a question worth searching for: no stop words, no one-letter words."""
    seen: dict[str, None] = {}
    for w in words(question):
        if len(w) > 1 and w not in STOPWORDS:
            seen.setdefault(w, None)
    return list(seen)


def _comment_texts(lines: Sequence[str]) -> list[str]:
    """Per line: its comment or docstring text, markers stripped ("" for plain code)."""
    out: list[str] = []
    quote: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line:
            out.append("")
            continue
        if quote is not None:
            end = line.find(quote)
            out.append(line if end < 0 else line[:end])
            if end >= 0:
                quote = None
            continue
        if '"""' in line or "'''" in line:
            opener = '"""' if '"""' in line else "'''"
            rest = line[line.index(opener) + 3 :]
            end = rest.find(opener)
            out.append(rest if end < 0 else rest[:end])
            if end < 0:
                quote = opener
            continue
        if line[0] in "#/*-;%":
            m = _COMMENT.match(line)
            out.append(m.group(1) if m else "")
        elif "//" in line:
            out.append(line.split("//", 1)[1])
        elif " #" in line:
            out.append(line.split(" #", 1)[1])
        else:
            out.append("")
    return out


ABOVE_LINES = 40


def _comments_above(lines: Sequence[str], comments: Sequence[str], index: int) -> list[int]:
    """The comment block right above line ``index`` (JSDoc, ``//`` runs, C block comments).

    Decorators and attributes between the comment and the definition are skipped.
    """
    out: list[int] = []
    i = index - 1
    while i >= 0 and index - i <= ABOVE_LINES:
        raw = lines[i].strip()
        if comments[i] or (raw.startswith(("*", "/*", "//", "#")) and not raw.startswith("#[")):
            out.append(i)
        elif raw.startswith(("@", "#[")) and not out:
            pass
        else:
            break
        i -= 1
    out.reverse()
    return out


def _body(comments: Sequence[str]) -> str:
    text = " ".join(c for c in comments if c)
    return _joined_words(text[:BODY_CHARS])


def _body_of_lines(comments: Sequence[str], cache: list[str | None], lines: Iterable[int]) -> str:
    """:func:`_body` of the comments on ``lines``, reusing each line's words.

    A definition's body overlaps its parent's and its neighbours' (the comment
    above one method is inside its class), so splitting words per line once per
    file instead of per definition halves the cost of the ranked-search rows.
    Same result as ``_body([comments[i] for i in lines])``: no word spans the
    space that joins two lines, and the line cut by :data:`BODY_CHARS` is split
    from its cut text.
    """
    parts: list[str] = []
    total = 0
    for i in lines:
        c = comments[i]
        if not c:
            continue
        sep = 1 if total else 0
        if total + sep + len(c) > BODY_CHARS:
            room = BODY_CHARS - total - sep
            if room > 0:
                parts.append(_joined_words(c[:room]))
            break
        w = cache[i]
        if w is None:
            w = cache[i] = _joined_words(c)
        parts.append(w)
        total += sep + len(c)
    return " ".join(p for p in parts if p)


DocRow = tuple[str, int, int, str, str, str, str, str, str, str]


_LINE_COMMENTS = ("#", "//", "/*", "*", "--", ";", "%")


def _leading_block(text: str) -> list[str]:
    """The comment or docstring lines at the top of a file, before the first code line."""
    block: list[str] = []
    quote: str | None = None
    for raw in text.split("\n", HEAD_LINES)[:HEAD_LINES]:
        line = raw.strip()
        if quote is not None:
            block.append(raw)
            if quote in line:
                quote = None
            continue
        opener = next((q for q in _QUOTES if line.lstrip("rRbBuU").startswith(q)), None)
        if opener is not None:
            block.append(raw)
            if line.count(opener) == 1:
                quote = opener
            continue
        if not line or line.startswith(_LINE_COMMENTS):
            block.append(raw)
            continue
        break
    return block


def file_doc_row(path: str, text: str, lines: int) -> DocRow:
    """The file's own row: its path words and its leading comment or module docstring."""
    body = _body(_comment_texts(_leading_block(text)))
    return (path, 1, max(1, lines), "", "file", "", "", "", _joined_words(path), body)


def def_doc_rows(
    text: str, defs: Sequence[tuple[str, str, str, str, int, int, str, str]]
) -> list[DocRow]:
    """One row per definition: name words, path words, and signature + doc + inner comments.

    Comments are found once per file (one pass over its lines), then each
    definition takes those within its first :data:`HEAD_LINES` lines.
    """
    if not defs:
        return []
    lines = text.split("\n")
    comments = _comment_texts(lines)
    cache: list[str | None] = [None] * len(comments)
    path_words = _joined_words(defs[0][3])
    rows: list[DocRow] = []
    for _name, qualname, kind, path, start, end, signature, doc in defs:
        above = _comments_above(lines, comments, start - 1)
        first = max(0, start - 1)
        inner = [*above, *range(first, min(end, start - 1 + HEAD_LINES, len(comments)))]
        names = _joined_words(qualname)
        body = _joined_words(f"{signature} {doc}") + " " + _body_of_lines(comments, cache, inner)
        rows.append((path, start, end, qualname, kind, signature, doc, names, path_words, body))
    return rows


def doc_rows(
    path: str, text: str, lines: int, defs: Sequence[tuple[str, str, str, str, int, int, str, str]]
) -> list[DocRow]:
    """Every ranked-search row of one file: the file's own, then one per definition."""
    return [file_doc_row(path, text, lines), *def_doc_rows(text, defs)]
