"""Candidate files for a regex with no required literal, found by ripgrep.

A pattern like ``\\b\\d{4}-\\d\\d-\\d\\d\\b`` gives the trigram index nothing to
look up, so grep would run Python's backtracking ``re`` over every file: about
150 MB/s, ten seconds and more on a monorepo. When ``rg`` is on the ``PATH`` it
picks the candidate files instead (a DFA, on every core), and ``re`` then runs
on those alone, so the hits are still exactly Python's.

That needs a ripgrep regex that matches wherever the Python one does, on the
same bytes. :func:`relax` builds it from Python's own parse of the pattern:

- literals and classes carry over, written as code points; under
  ``IGNORECASE`` each character becomes the explicit set of characters Python
  folds to the same one (so ripgrep's own case folding never decides);
- ``\\d`` is Unicode ``Nd`` in both; ``\\w`` and ``\\s`` are widened where
  Python's definitions are larger (letters and numbers; ``\\x1c``-``\\x1f``);
  ``\\W``, ``\\D`` and a negated class with a category become "any character";
- anchors, word boundaries and lookarounds are dropped (a match without them
  is a superset); lazy, possessive and atomic repeats become plain ones;
- backreferences and conditionals are not translated: grep scans.

grep is line-oriented (a hit is a match within one line), so ripgrep searches
line by line too, and ``.`` (with or without ``DOTALL``) is any character of
the line. Files are searched as raw bytes (``--encoding none``, ``--text``),
which is what the store decoded; files that had invalid UTF-8 are always
candidates, and so is everything when ripgrep is missing, fails or runs out
of time. ripgrep reads the working tree, which may differ from the index
(an edit the watcher has not applied yet, a replica's other checkout): the
caller checks whole every file whose size or mtime differs from what the
index read, so the hits are always the index's.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]  # the case folding re itself uses
import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from re import _constants as C  # type: ignore[attr-defined]
from re._casefix import _EXTRA_CASES  # type: ignore[import-not-found]
from typing import Any

from rlm_mcp.index.search.literals import parse_pattern

__all__ = ["MIN_BYTES", "candidates", "forget", "interrupt", "popen", "relax", "ripgrep"]

MIN_BYTES = 32 << 20
"""Below this many bytes of text Python's scan is as fast as starting ripgrep."""
ARGV_CHARS = 500_000
"""Top-level paths passed to ripgrep, in characters (well under the kernel's argument limit)."""
TIMEOUT = 60.0
"""Seconds ripgrep may take: it runs in linear time (no regex of its can stall it), and
what it saves is a scan in Python that would take longer still; a cold page cache on a
monorepo costs it seconds to tens of seconds."""
MAX_CLASS = 4_096
"""A case-folded class larger than this becomes "any character"."""

_ANY = "."
NEWLINE = 10
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)}
_ATOMIC = getattr(C, "ATOMIC_GROUP", None)
# Python's categories as ripgrep classes that contain them (a test checks every code point).
# \D and \W are missing: they become "any character".
_CATEGORY: dict[Any, str] = {
    C.CATEGORY_DIGIT: "\\d",
    C.CATEGORY_WORD: "\\w\\p{L}\\p{N}",
    C.CATEGORY_SPACE: "\\s\\x{1c}-\\x{1f}",
    C.CATEGORY_NOT_SPACE: "\\S",
}

_NEGATED = {
    C.CATEGORY_DIGIT: C.CATEGORY_NOT_DIGIT,
    C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT,
    C.CATEGORY_WORD: C.CATEGORY_NOT_WORD,
    C.CATEGORY_NOT_WORD: C.CATEGORY_WORD,
    C.CATEGORY_SPACE: C.CATEGORY_NOT_SPACE,
    C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE,
}


class _Untranslatable(Exception):
    pass


@dataclass
class _Out:
    regex: str
    nullable: bool


def relax(pattern: str, flags: int = 0) -> str | None:
    """The ripgrep regex for ``pattern``; ``None`` when it would pick every file."""
    got = parse_pattern(pattern, flags)
    if got is None:
        return None
    parsed, icase = got
    try:
        items = [o for op, av in parsed if (o := _node(op, av, icase)) is not None]
    except (_Untranslatable, RecursionError):
        return None
    # A file holds a match only if it holds one of the part between the optional
    # ends ("[^"]*x" needs an "x").
    while items and items[0].nullable:
        items.pop(0)
    while items and items[-1].nullable:
        items.pop()
    return "".join(o.regex for o in items) or None


def _cp(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:x}}}"


@functools.lru_cache(maxsize=1)
def _folds() -> dict[int, tuple[int, ...]]:
    """Per simple lower-case code point, every code point Python folds to it."""
    table: dict[int, list[int]] = {}
    for c in range(sys.maxunicode + 1):
        lo = _sre.unicode_tolower(c)
        if lo != c:
            table.setdefault(lo, [lo]).append(c)
    return {k: tuple(v) for k, v in table.items()}


def _fold_set(codes: Iterable[int]) -> set[int]:
    """Every character ``re.IGNORECASE`` lets match one of ``codes``."""
    fixes: dict[int, tuple[int, ...]] = _EXTRA_CASES
    folds = _folds()
    out: set[int] = set()
    for c in codes:
        lo = _sre.unicode_tolower(c)
        group = {lo, *folds.get(lo, ())}
        for extra in fixes.get(lo, ()):
            group |= {extra, *folds.get(_sre.unicode_tolower(extra), ())}
        out |= group
        if len(out) > MAX_CLASS:
            raise OverflowError
    return out


def _ranges(codes: set[int]) -> str:
    parts: list[str] = []
    ordered = sorted(codes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(_cp(ordered[i]) if i == j else f"{_cp(ordered[i])}-{_cp(ordered[j])}")
        i = j + 1
    return "".join(parts)


def _literal(code: int, icase: bool) -> _Out:
    if code == NEWLINE:
        raise _Untranslatable("a newline is never inside a line")
    if icase:
        try:
            codes = _fold_set([code]) - {NEWLINE}
        except OverflowError:
            return _Out(_ANY, False)
        if len(codes) > 1:
            return _Out(f"[{_ranges(codes)}]", False)
    return _Out(_cp(code), False)


def _class(items: list[tuple[Any, Any]], icase: bool) -> _Out:
    negate = bool(items) and items[0][0] is C.NEGATE
    body = items[1:] if negate else items
    if negate and len(body) == 1 and body[0][0] is C.CATEGORY and body[0][1] in _NEGATED:
        return _class([(C.CATEGORY, _NEGATED[body[0][1]])], icase)  # [^\s] is \S
    codes: set[int] = set()
    cats: list[str] = []
    for op, av in body:
        if op is C.LITERAL:
            codes.add(av)
        elif op is C.RANGE:
            lo, hi = av
            if hi - lo > MAX_CLASS:
                return _Out(_ANY, False)
            codes.update(range(lo, hi + 1))
        elif op is C.CATEGORY and not negate and av in _CATEGORY:
            cats.append(_CATEGORY[av])
        else:
            return _Out(_ANY, False)  # \W, \D, or a category in a negated class
    if icase:
        try:
            codes = _fold_set(codes)
        except OverflowError:
            return _Out(_ANY, False)
    codes.discard(NEWLINE)  # never inside a line; ripgrep refuses it in a class
    if negate:
        return _Out(f"[^{_ranges(codes)}]", False) if codes else _Out(_ANY, False)
    if not codes and not cats:
        raise _Untranslatable("a class that matches nothing within a line")
    return _Out(f"[{_ranges(codes)}{''.join(cats)}]", False)


def _seq(items: list[tuple[Any, Any]], icase: bool) -> _Out:
    outs = [o for op, av in items if (o := _node(op, av, icase)) is not None]
    return _Out("".join(o.regex for o in outs), all(o.nullable for o in outs))


def _node(op: Any, av: Any, icase: bool) -> _Out | None:
    if op is C.LITERAL:
        return _literal(av, icase)
    if op is C.NOT_LITERAL:
        if icase:
            return _Out(_ANY, False)
        return _Out(_ANY if av == NEWLINE else f"[^{_cp(av)}]", False)
    if op is C.ANY:
        return _Out(_ANY, False)  # within a line, with or without DOTALL
    if op is C.IN:
        return _class(list(av), icase)
    if op is C.AT or op in (C.ASSERT, C.ASSERT_NOT):
        return None  # anchors, boundaries and lookarounds only narrow a match
    if op is C.SUBPATTERN:
        _group, add, remove, sub = av
        sub_icase = (icase or bool(add & re.IGNORECASE)) and not (remove & re.IGNORECASE)
        out = _seq(list(sub), sub_icase)
        return _Out(f"(?:{out.regex})", out.nullable)
    if op is _ATOMIC:
        out = _seq(list(av), icase)
        return _Out(f"(?:{out.regex})", out.nullable)
    if op is C.BRANCH:
        alts = [_seq(list(alt), icase) for alt in av[1]]
        return _Out("(?:" + "|".join(a.regex for a in alts) + ")", any(a.nullable for a in alts))
    if op in _REPEATS:
        lo, hi, sub = av
        out = _seq(list(sub), icase)
        if out.regex == "":
            return None
        top = "" if hi == C.MAXREPEAT else str(hi)
        bounds = f"{{{lo}}}" if str(lo) == top else f"{{{lo},{top}}}"
        return _Out(f"(?:{out.regex}){bounds}", lo == 0 or out.nullable)
    raise _Untranslatable(op)  # backreferences, conditionals


@functools.lru_cache(maxsize=1)
def ripgrep() -> str | None:
    """The ``rg`` executable, or ``None``."""
    return shutil.which("rg")


_BINARY = b": binary file matches"
_unreached: dict[tuple[str, int], frozenset[str]] = {}
_unreached_lock = threading.Lock()


def candidates(
    root: Path,
    paths: Collection[str],
    regex: str,
    timeout: float,
    *,
    universe: Collection[str],
    version: int,
    max_bytes: int,
) -> dict[str, array[int] | None] | None:
    """The files among ``paths`` (relative to ``root``) ripgrep finds ``regex`` in, with the
    numbers of the lines it finds it on (``None``: a file it did not reach, to scan whole).

    ripgrep walks the tree itself (given explicit files it runs two to three
    times slower), ignoring no ignore file, so any indexed file it reaches is
    searched; the few it does not reach (behind a symbolic link, say) are
    candidates anyway. Which of the indexed files (``universe``) it does not
    reach is found once per index ``version`` (and only those are kept). ``None``
    when ripgrep is missing, refuses the regex, fails or runs past ``timeout``:
    then every file is a candidate.
    """
    rg = ripgrep()
    if rg is None or not paths or not root.is_dir():
        return None
    deadline = time.monotonic() + timeout
    tops = _tops(paths)
    if tops is None:
        return None
    walk = [
        "--no-config", "--no-ignore", "--hidden", "--glob", "!.git", "--encoding", "none",
        "--max-filesize", str(max_bytes), "--no-messages", "--color", "never", "--null",
    ]  # fmt: skip
    # A regex ripgrep refuses exits 2 as a failed walk does; only the first means "no file".
    check = _run([rg, "--no-config", "--regexp", regex, "--", os.devnull], root, deadline)
    if check is None or check[0] != 1:
        return None
    key = (str(root), version)
    with _unreached_lock:
        unreached = _unreached.get(key)
    if unreached is None:
        every = _tops(universe)
        if every is None:
            return None
        listed = _run([rg, "--files", *walk, "--", *every], root, deadline)
        if listed is None:
            return None
        reached = set(_paths(listed[1]))
        unreached = frozenset(p for p in universe if p not in reached or "\n" in p)
        del reached
        with _unreached_lock:
            for old in [k for k in _unreached if k[0] == key[0]]:
                del _unreached[old]
            _unreached[key] = unreached
    # --binary: a NUL byte does not end the search of a file (the store kept its text);
    # --heading --only-matching --replace "": each file's name once, then "N:" per match.
    found = _run(
        [rg, "--heading", "--with-filename", "--line-number", "--only-matching",
         "--replace", "", "--binary", *walk, "--regexp", regex, "--", *tops],
        root,
        deadline,
    )  # fmt: skip
    if found is None:
        return None
    out: dict[str, array[int] | None] = {}
    # One record per file, blank lines between: "NAME\0" then "N:" lines (and "--"
    # between runs), or "NAME: binary file matches (...)" for a file with a NUL byte.
    for record in found[1].split(b"\n\n"):
        name, sep, body = record.partition(b"\0")
        if sep:
            numbers: array[int] | None = array(
                "L", sorted({int(n[:-1]) for n in body.split() if n[:-1].isdigit()})
            )
        else:
            name = record.rpartition(_BINARY)[0]
            numbers = None
        path = os.fsdecode(name)
        if path in paths:
            out[path] = numbers
    # Files ripgrep did not reach, and names its output cannot carry: scanned whole.
    out.update((p, None) for p in unreached if p in paths)
    return out


def _tops(paths: Iterable[str]) -> list[str] | None:
    """The top-level entries holding ``paths``: ripgrep's arguments (``None``: too many)."""
    tops = sorted({p.split("/", 1)[0] for p in paths})
    return tops if sum(len(t) + 1 for t in tops) <= ARGV_CHARS else None


def _run(args: list[str], root: Path, deadline: float) -> tuple[int, bytes] | None:
    """ripgrep's exit status and output; ``None`` when it did not finish in time (or was
    stopped by :func:`interrupt`)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    try:
        proc = subprocess.Popen(
            args, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError:
        return None
    with _running_lock:
        _running.add(proc)
    try:
        out, _ = proc.communicate(timeout=left)
    except subprocess.SubprocessError:
        proc.kill()
        proc.communicate()
        return None
    finally:
        with _running_lock:
            _running.discard(proc)
    return None if proc.returncode < 0 else (proc.returncode, out)


_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


def popen(args: list[str], root: Path) -> subprocess.Popen[bytes]:
    """ripgrep started with its output piped, stopped by :func:`interrupt` until
    :func:`forget` is called (raises ``OSError`` as ``Popen`` does)."""
    proc = subprocess.Popen(
        args, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with _running_lock:
        _running.add(proc)
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    with _running_lock:
        _running.discard(proc)


def interrupt() -> None:
    """Kill every ripgrep this process runs (Ctrl-C): their callers get ``None`` at once."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()


def _paths(out: bytes) -> list[str]:
    return [os.fsdecode(p) for p in out.split(b"\0") if p]
