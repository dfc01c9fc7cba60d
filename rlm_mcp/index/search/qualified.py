"""Dotted symbol names: ``Class.meth``, ``pkg.mod.func``, and the names close to a miss.

The store looks definitions up by ``name`` (or an exact ``qualname``); a
dotted query is resolved here, from the parts the store can find with an
index:

- **class-qualified** (``Console.print_j``): the definitions named by the
  last qualifier (``Console``, an exact look-up) give the files to read; in
  those, a definition matches when its enclosing names end with the
  qualifiers and its own name matches the last part (exact, prefix or
  substring, as the mode says);
- **module-qualified** (``rich.console.Console.print_json``,
  ``pkg.mod.func``): a file's module is its path without the extension, the
  slashes read as dots, a trailing ``__init__`` dropped (``pkg/mod/__init__.py``
  is ``pkg.mod``); a leading run of the qualifiers names the end of a file's
  module, the rest its enclosing definitions exactly.

With ``fold`` every part compares case-insensitively: the fallback when the
exact spelling finds nothing. :func:`close_names` lists the qualified names
nearest a query that finds nothing at all (the "did you mean" list).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from rlm_mcp.index.model import Definition, DefQuery
from rlm_mcp.index.store.base import IndexStore

__all__ = ["close_names", "module_parts", "resolve"]

NameMode = Literal["exact", "prefix", "substring"]

MAX_ANCHORS = 2_000
"""Definitions named by the last qualifier whose files are read (a class name is rare)."""
MAX_FILES = 500
"""Files read for one resolution: each costs one outline query."""


def module_parts(path: str) -> list[str]:
    """The module a file's path names, as parts: ``pkg/mod.py`` is ``["pkg", "mod"]``."""
    head, _, base = path.rpartition("/")
    stem = base.rsplit(".", 1)[0] if "." in base[1:] else base
    parts = [*(head.split("/") if head else []), stem]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return parts


def _eq(a: str, b: str, fold: bool) -> bool:
    return a == b or (fold and a.lower() == b.lower())


def _ends_with(parts: Sequence[str], tail: Sequence[str], fold: bool) -> bool:
    if len(tail) > len(parts):
        return False
    start = len(parts) - len(tail)
    return all(_eq(parts[start + i], t, fold) for i, t in enumerate(tail))


def _name_matches(name: str, last: str, mode: NameMode, fold: bool) -> bool:
    if mode == "exact":
        return _eq(name, last, fold)
    if mode == "prefix":
        return name.lower().startswith(last.lower())
    return last.lower() in name.lower()


def _wanted(d: Definition, kinds: frozenset[str] | None, path_rx: re.Pattern[str] | None) -> bool:
    """Whether ``d`` passes the kind and path filters (``None``: no filter)."""
    if kinds is not None and d.kind not in kinds:
        return False
    return path_rx is None or path_rx.match(d.path) is not None


def _members(
    outlines: Iterable[list[Definition]],
    parents_ok: Callable[[list[str]], bool],
    last: str,
    mode: NameMode,
    fold: bool,
) -> Iterator[Definition]:
    """The definitions in ``outlines`` (one per file, read lazily) whose enclosing names
    pass ``parents_ok`` and whose own name matches ``last``."""
    for defs in outlines:
        for d in defs:
            if parents_ok(d.qualname.split(".")[:-1]) and _name_matches(d.name, last, mode, fold):
                yield d


def resolve(
    store: IndexStore,
    paths: Iterable[str],
    query: str,
    mode: NameMode,
    *,
    fold: bool = False,
    kinds: frozenset[str] | None = None,
    path_regex: str | None = None,
    limit: int = 50,
) -> list[Definition]:
    """The definitions a dotted ``query`` names (see the module), in file order.

    ``paths`` are the indexed files (for module-qualified names); ``[]`` when
    ``query`` has no qualifier.
    """
    *qual, last = query.split(".")
    if not qual or not all(qual):
        return []
    path_rx = re.compile(path_regex) if path_regex is not None else None
    out: dict[Definition, None] = {}

    def keep(defs: Iterable[Definition]) -> bool:
        for d in defs:
            if not _wanted(d, kinds, path_rx):
                continue
            out.setdefault(d)
            if len(out) >= limit:
                return True
        return False

    outlines: dict[str, list[Definition]] = {}

    def outline(path: str) -> list[Definition]:
        got = outlines.get(path)
        if got is None:
            got = outlines[path] = store.find_defs(DefQuery("path", path))
        return got

    def members(
        files: Iterable[str], parents_ok: Callable[[list[str]], bool]
    ) -> Iterator[Definition]:
        return _members(map(outline, files), parents_ok, last, mode, fold)

    anchor = qual[-1]
    anchors = store.find_defs(DefQuery("prefix" if fold else "exact", anchor, limit=MAX_ANCHORS))
    files = list(dict.fromkeys(a.path for a in anchors if _eq(a.name, anchor, fold)))[:MAX_FILES]
    if keep(members(files, lambda ps: _ends_with(ps, qual, fold))):
        return sorted(out, key=_order)
    listed = list(paths)
    for k in range(1, len(qual) + 1):
        module, inner = qual[:k], qual[k:]
        hint = module[-1].lower() if fold else module[-1]
        files = [
            p
            for p in listed
            if hint in (p.lower() if fold else p) and _ends_with(module_parts(p), module, fold)
        ][:MAX_FILES]

        def inside(ps: list[str], inner: list[str] = inner) -> bool:
            return len(ps) == len(inner) and _ends_with(ps, inner, fold)

        if keep(members(files, inside)):
            break
    return sorted(out, key=_order)


def _order(d: Definition) -> tuple[str, int]:
    return d.path, d.start_line


def close_names(store: IndexStore, query: str, limit: int = 5) -> list[str]:
    """The qualified names nearest ``query`` (a miss), best first: the "did you mean" list.

    Candidates share the first two letters of ``query``'s last part (an indexed
    prefix look-up), so a typo past them is found, one in them is not.
    """
    q = query.strip()
    last = q.rsplit(".", 1)[-1]
    if len(last) < 2:
        return []
    pool = store.find_defs(DefQuery("prefix", last[:2], limit=20_000))
    dotted = "." in q
    by_key: dict[str, str] = {}
    for d in pool:
        key = (d.qualname if dotted else d.name).lower()
        by_key.setdefault(key, d.qualname)
    keys = difflib.get_close_matches(q.lower(), list(by_key), n=limit, cutoff=0.6)
    return list(dict.fromkeys(by_key[k] for k in keys))
