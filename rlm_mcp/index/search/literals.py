"""The literals a regex match must contain: the query a text index prefilters with.

:func:`literal_query` walks Python's own parse of a pattern (so it agrees with
``re`` on escapes, classes, flags and verbose mode) and returns a disjunction
of conjunctions: every match of the pattern contains every literal of at least
one alternative. A store's trigram index turns that into candidate files, and
grep runs the regex on those only (as zoekt and Google Code Search do). Any
file a match can occur in is always a candidate; the converse need not hold,
since the regex checks each candidate anyway.

Only ASCII runs of three or more characters count, so the store's case
folding (ASCII-only in both SQLite's trigram tokenizer and PostgreSQL's
``ILIKE`` under the C collation) can never drop a file. Under ``IGNORECASE``
the ASCII letters that Python also equates with a non-ASCII letter (``i`` with
``İ`` and ``ı``, ``k`` with the Kelvin sign, ``s`` with the long s) end a run.
"""

from __future__ import annotations

import re
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]
from typing import Any

__all__ = ["FOLD_UNSAFE", "MIN_LITERAL", "backtracks_linearly", "literal_query", "parse_pattern"]

MIN_LITERAL = 3
"""A trigram index can only use literals of at least three characters."""
FOLD_UNSAFE = frozenset("iIkKsS")
"""ASCII letters ``re.IGNORECASE`` equates with a non-ASCII character (a test re-derives it)."""
MAX_ALTERNATIVES = 32
MAX_LITERALS = 12

Query = list[frozenset[str]]
"""Alternatives (OR) of literal sets (AND); ``[frozenset()]`` matches everything."""
_ALL: Query = [frozenset()]
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)}


def parse_pattern(pattern: str, flags: int = 0) -> tuple[list[tuple[Any, Any]], bool] | None:
    """``re``'s own parse of ``pattern`` and whether it ignores case; ``None`` if invalid."""
    try:
        parsed = P.parse(pattern, flags)
    except (re.error, TypeError, ValueError, OverflowError, RecursionError):
        return None
    return list(parsed), bool(parsed.state.flags & re.IGNORECASE)


def literal_query(pattern: str, flags: int = 0) -> list[list[str]] | None:
    """Alternatives of required literals for ``pattern`` (compiled with ``flags``).

    ``None`` when some match may contain no usable literal: the caller scans
    every file. Literals keep their case; the store matches them
    case-insensitively.
    """
    got = parse_pattern(pattern, flags)
    if got is None:
        return None
    parsed, icase = got
    try:
        query = _seq(parsed, icase)
    except RecursionError:
        return None
    if not query or any(not alt for alt in query):
        return None
    return [sorted(alt, key=lambda s: (-len(s), s))[:MAX_LITERALS] for alt in query]


def _and(a: Query, b: Query) -> Query:
    if a == _ALL:
        return b
    if b == _ALL:
        return a
    if len(a) * len(b) > MAX_ALTERNATIVES:
        # Dropping one side keeps a superset; keep the side with fewer branches.
        return a if len(a) <= len(b) else b
    return _dedupe([x | y for x in a for y in b])


def _or(alts: list[Query]) -> Query:
    out: Query = []
    for q in alts:
        if any(not alt for alt in q):
            return _ALL
        out.extend(q)
    out = _dedupe(out)
    return out if len(out) <= MAX_ALTERNATIVES else _ALL


def _dedupe(q: Query) -> Query:
    return list(dict.fromkeys(q))


def _usable(ch: str, icase: bool) -> bool:
    return ch < "\x80" and not (icase and ch in FOLD_UNSAFE)


def _seq(items: list[tuple[Any, Any]], icase: bool) -> Query:
    acc: Query = _ALL
    run: list[str] = []

    def flush() -> None:
        nonlocal acc
        if len(run) >= MIN_LITERAL:
            acc = _and(acc, [frozenset({"".join(run)})])
        run.clear()

    for op, av in items:
        if op is C.LITERAL:
            ch = chr(av)
            if _usable(ch, icase):
                run.append(ch)
                continue
            flush()
        elif op is C.SUBPATTERN:
            flush()
            _group, add, remove, sub = av
            sub_icase = (icase or bool(add & re.IGNORECASE)) and not (remove & re.IGNORECASE)
            acc = _and(acc, _seq(list(sub), sub_icase))
        elif op is C.BRANCH:
            flush()
            acc = _and(acc, _or([_seq(list(alt), icase) for alt in av[1]]))
        elif op in _REPEATS:
            flush()
            lo, _hi, sub = av
            if lo >= 1:
                acc = _and(acc, _seq(list(sub), icase))
        elif op is getattr(C, "ATOMIC_GROUP", None):
            flush()
            acc = _and(acc, _seq(list(av), icase))
        else:
            # Classes, anchors, backreferences, lookarounds, ``.``: no literal to rely on.
            flush()
    flush()
    return acc


def backtracks_linearly(pattern: str, flags: int = 0) -> bool:
    """Whether ``re`` runs ``pattern`` in time about linear in a line's length: no repeat holds
    another repeat or an alternation, and no backreference or conditional (the shapes that
    backtrack exponentially, like ``(a+)+`` or ``(a|a)*``).

    Only for work outside the grep helper that may run a user's regex again on a line the
    helper already matched (the CLI's highlighting): ``False`` when unsure.
    """
    got = parse_pattern(pattern, flags)
    if got is None:
        return False
    return _linear(got[0], inside_repeat=False)


def _linear(items: Any, inside_repeat: bool) -> bool:
    for op, av in items:
        if op in _REPEATS:
            _, hi, sub = av
            if inside_repeat or not _linear(sub, inside_repeat=hi != 1):
                return False
        elif op is C.BRANCH:
            if inside_repeat or not all(_linear(s, inside_repeat) for s in av[1]):
                return False
        elif op is C.SUBPATTERN:
            if not _linear(av[-1], inside_repeat):
                return False
        elif op in (C.ASSERT, C.ASSERT_NOT):
            if not _linear(av[1], inside_repeat):
                return False
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS) or op is getattr(C, "ATOMIC_GROUP", None):
            return False
    return True
