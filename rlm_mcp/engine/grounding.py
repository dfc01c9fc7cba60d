"""Checking an answer's citations against the index.

Small models cite files that do not exist (``src/utils/helpers.py:42``) and
functions nobody wrote. Before an answer is accepted, every path,
``path:line`` citation and backticked symbol in it is looked up; the ones the
index does not have are shown back to the model once, with the nearest real
names, and the result lists which citations were verified.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
from collections.abc import Sequence
from typing import Protocol

from rlm_mcp.engine.result import Citation
from rlm_mcp.errors import RlmMcpError
from rlm_mcp.index.model import Definition

__all__ = ["check_citations", "extract_citations"]

_EXT = r"[A-Za-z][A-Za-z0-9]{0,9}"
_PATH = re.compile(
    r"(?<![\w/.:-])((?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\." + _EXT + r")(?::(\d+)(?:-(\d+))?)?(?![\w/])"
)
_SYMBOL = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(\(\))?`")
_NOT_PATHS = {"e.g", "i.e", "etc"}
_FILE_EXTENSIONS = frozenset(
    """py pyi pyx pxd js mjs cjs ts tsx jsx rs go c h cc cpp cxx hpp hh java kt kts rb php cs
    swift m mm scala lua sh bash zsh md rst txt toml yaml yml json cfg ini html htm css scss
    sql proto ex exs erl hrl hs ml mli jl r dart zig vue svelte el clj groovy gradle xml
    cmake mk in lock""".split()  # noqa: SIM905
)
_NOT_SYMBOLS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls", "this"}
MAX_CITATIONS = 40


class Citable(Protocol):
    """The slice of the index grounding needs."""

    def files(self, glob: str = "**") -> list[str]: ...

    def text(self, path: str) -> str: ...

    def definition(self, name: str) -> Sequence[Definition]: ...

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> Sequence[Definition]: ...


Found = tuple[str, str, int | None, int | None, str]


def extract_citations(text: str) -> list[Found]:
    """``(kind, name, line, end_line, raw)`` for each path (``path``) or symbol (``symbol``).

    A path needs an extension and must look like a file name (``setup.py``,
    ``src/app/main.rs:12``); a symbol is a backticked identifier that is not
    also a path. Version numbers and URLs are ignored.
    """
    out: list[Found] = []
    seen: set[str] = set()
    for m in _PATH.finditer(text):
        raw, path, line, end = m.group(0), m.group(1), m.group(2), m.group(3)
        ext = path.rsplit(".", 1)[-1].lower()
        if (
            path.lower() in _NOT_PATHS
            or path[0].isdigit()
            or "://" in text[max(0, m.start() - 8) : m.start() + 3]
            or ("/" not in path and ext not in _FILE_EXTENSIONS)
            or text[m.end() : m.end() + 1] == "("
        ):
            continue
        if raw not in seen:
            seen.add(raw)
            out.append(("path", path, int(line) if line else None, int(end) if end else None, raw))
    for m in _SYMBOL.finditer(text):
        name, called = m.group(1), bool(m.group(2))
        looks_like_file = "." in name and name.rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS
        if name in seen or looks_like_file or len(name) < 3 or name in _NOT_SYMBOLS:
            continue
        if not (called or "_" in name or "." in name or any(c.isupper() for c in name[1:])):
            continue
        seen.add(name)
        out.append(("symbol", name, None, None, name))
    return out[:MAX_CITATIONS]


def check_citations(repo: Citable, text: str) -> list[Citation]:
    """Each citation in ``text`` with whether the index has it, and the nearest names if not."""
    found = extract_citations(text)
    if not found:
        return []
    files = repo.files()
    fileset = set(files)
    by_base: dict[str, list[str]] = {}
    for p in files:
        by_base.setdefault(p.rsplit("/", 1)[-1], []).append(p)
    out: list[Citation] = []
    for kind, name, line, end, raw in found:
        label = raw or name
        if kind == "path":
            path = _resolve(name, fileset, files)
            if path is None:
                out.append(Citation(label, False, _nearest_paths(name, by_base)))
                continue
            problem = _line_problem(repo, path, line, end)
            if problem:
                out.append(Citation(label, False, (problem,)))
                continue
            out.append(Citation(label, True))
        else:
            if _symbol_exists(repo, name):
                out.append(Citation(label, True))
            else:
                out.append(Citation(label, False, _nearest_symbols(repo, name)))
    return out


def _resolve(path: str, fileset: set[str], files: list[str]) -> str | None:
    p = path.lstrip("./")
    if p in fileset:
        return p
    suffix = "/" + p
    matches = [f for f in files if f.endswith(suffix)]
    return matches[0] if len(matches) == 1 else None


def _line_problem(repo: Citable, path: str, line: int | None, end: int | None) -> str:
    """Why ``path:line[-end]`` does not exist ("" when it does)."""
    if line is None:
        return ""
    try:
        count = repo.text(path).count("\n") + 1
    except RlmMcpError:
        return f"{path} cannot be read"
    last = end if end is not None else line
    if line < 1 or last < line:
        return f"{line}-{last} is not a line range of {path}"
    if last > count:
        return f"{path} has {count} lines, not {last}"
    return ""


def _nearest_paths(path: str, by_base: dict[str, list[str]]) -> tuple[str, ...]:
    base = path.rsplit("/", 1)[-1]
    same = by_base.get(base)
    if same:
        return tuple(sorted(same, key=len)[:3])
    close = difflib.get_close_matches(base, list(by_base), n=3, cutoff=0.6)
    return tuple(by_base[c][0] for c in close)


def _symbol_exists(repo: Citable, name: str) -> bool:
    """A defined name, ``Class.method``, or ``module.name`` whose module is a real file."""
    if repo.definition(name):
        return True
    if "." not in name:
        return False
    owner, short = name.rsplit(".", 1)
    if not repo.definition(short):
        return False
    if repo.definition(owner):
        return True
    module = owner.replace(".", "/")
    return any(
        f.endswith((f"{module}.py", f"{module}/__init__.py"))
        or f.rsplit(".", 1)[0].endswith(module)
        for f in repo.files()
    )


def _nearest_symbols(repo: Citable, name: str) -> tuple[str, ...]:
    """Real names close to ``name``: candidates share its start, its end, or its middle."""
    short = name.rsplit(".", 1)[-1]
    probes = {short[:3], short[-4:], short[len(short) // 3 : len(short) // 3 + 3]}
    names: list[str] = []
    for probe in sorted(p for p in probes if len(p) >= 3):
        for d in repo.symbols(probe, match="substring", limit=300):
            qual = d.qualname or d.name
            if qual and qual not in names:
                names.append(qual)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if not close and "." in name:
        by_short = {n.rsplit(".", 1)[-1]: n for n in names}
        close = [
            by_short[c] for c in difflib.get_close_matches(short, list(by_short), n=3, cutoff=0.6)
        ]
    return tuple(close)
