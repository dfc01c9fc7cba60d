"""Which paths a set of globs selects, with ripgrep's rules, for every search that takes one.

``rlm-mcp search -g``, the MCP tools (``rlm_search``, ``rlm_find``, ``rlm_symbols``) and the
REPL's ``repo.grep``/``repo.files`` all go through :func:`glob_regex`, so a glob means the
same thing everywhere:

- ``**`` spans directories, ``*`` and ``?`` do not; a glob without ``/`` matches at any depth;
  a glob naming a directory also matches every file below it;
- braces expand: ``*.{py,pyi}`` is ``*.py`` or ``*.pyi`` (nested braces too);
- ``!`` negates: ``!tests/**`` excludes;
- several globs: the last one that matches a path decides (include, or exclude if
  negated); a path no glob matches is included only when every glob is negated
  (ripgrep's ``-g`` precedence);
- file types (``-t py``) narrow further: the path must also match one of the types' globs.

The result is one Python regex (matched at the path's start), so the stores take it as
the ``path_regex`` of their queries unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rlm_mcp.errors import SearchError
from rlm_mcp.index.discover.ignore import translate_glob
from rlm_mcp.index.parse.languages import EXTENSIONS, FILENAMES

__all__ = [
    "FILE_TYPES",
    "GlobSpec",
    "PathFilter",
    "expand_braces",
    "glob_regex",
    "paths_matching",
    "type_list",
]

_SHORT = {
    "python": "py",
    "javascript": "js",
    "typescript": "ts",
    "markdown": "md",
    "csharp": "cs",
    "bash": "sh",
    "ocaml_interface": "ocaml",
    "tsx": "ts",
}
_EXTRA: dict[str, tuple[str, ...]] = {
    "txt": ("*.txt",),
    "cpp": ("*.C", "*.H", "*.inl"),
    "ts": ("*.tsx",),
    "config": ("*.cfg", "*.conf", "*.config", "*.ini"),
    "license": ("COPYING", "COPYING[.-]*", "LICEN[CS]E", "LICEN[CS]E[.-]*"),
}


def _file_types() -> dict[str, tuple[str, ...]]:
    """ripgrep-style type names (``py``, ``js``, ``rust`` ...) from the index's language table."""
    types: dict[str, list[str]] = {}
    for ext, lang in EXTENSIONS.items():
        types.setdefault(_SHORT.get(lang, lang), []).append(f"*{ext}")
    for name, lang in FILENAMES.items():
        types.setdefault(_SHORT.get(lang, lang), []).append(name)
    for name, extra in _EXTRA.items():
        types.setdefault(name, []).extend(g for g in extra if g not in types.get(name, ()))
    return {k: tuple(dict.fromkeys(v)) for k, v in sorted(types.items()) if v}


FILE_TYPES: dict[str, tuple[str, ...]] = _file_types()
"""File type name → its globs, for ``-t/--type`` (``rlm-mcp search --type-list`` prints it)."""


def type_list() -> list[str]:
    """``name: glob, glob`` per file type, as ``rg --type-list`` prints them."""
    return [f"{name}: {', '.join(globs)}" for name, globs in FILE_TYPES.items()]


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Globs in order (``!`` negates) and file type names; see the module docstring."""

    globs: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


GlobSpec = str | Sequence[str] | PathFilter
"""One glob, several (in precedence order), or globs with file types."""


def expand_braces(glob: str) -> list[str]:
    """``a{b,c{d,e}}`` → ``abd``... every alternative; an unclosed or escaped brace is literal."""
    depth, start, i = 0, -1, 0
    while i < len(glob):
        c = glob[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                head, body, tail = glob[:start], glob[start + 1 : i], glob[i + 1 :]
                parts = _split_top(body)
                if len(parts) < 2:
                    return [head + "{" + body + "}" + t for t in expand_braces(tail)]
                return [
                    head + alt + t for part in parts for alt in expand_braces(part)
                    for t in expand_braces(tail)
                ]  # fmt: skip
        i += 1
    return [glob]


def _split_top(body: str) -> list[str]:
    """``body`` split at the commas outside nested braces."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            cur += body[i : i + 2]
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return parts


def _one(glob: str) -> str:
    """The regex for one glob without ``!`` (braces expanded), matching a whole path."""
    alts: list[str] = []
    for g in expand_braces(glob.strip()):
        while g.startswith("./"):
            g = g[2:]
        g = g.strip("/")
        if g in ("", "**", "**/*"):
            return r".*\Z"
        body = translate_glob(g)
        if "/" not in g:
            body = "(?:.*/)?" + body
        alts.append(body + r"(?:/.*)?\Z")
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _any(regexes: Iterable[str]) -> str:
    items = list(regexes)
    return items[0] if len(items) == 1 else "(?:" + "|".join(items) + ")"


def _normal(spec: GlobSpec) -> PathFilter:
    if isinstance(spec, PathFilter):
        return spec
    if isinstance(spec, str):
        return PathFilter((spec,))
    if not all(isinstance(g, str) for g in spec):
        raise SearchError("a glob must be a string or a list of strings")
    return PathFilter(tuple(spec))


def glob_regex(spec: GlobSpec) -> re.Pattern[str]:
    """The regex (for ``match``) selecting the paths ``spec`` selects; see the module docstring.

    Its ``pattern`` carries its flags inline, so a store can compile it again.
    """
    return _compile(_normal(spec))


@functools.lru_cache(maxsize=256)
def _compile(spec: PathFilter) -> re.Pattern[str]:
    rules = [(g.startswith("!"), _one(g[1:] if g.startswith("!") else g)) for g in spec.globs]
    rules = [r for r, g in zip(rules, spec.globs, strict=True) if g.strip() not in ("", "!")]
    if not any(not neg for neg, _ in rules):
        negs = [rx for _, rx in rules]
        body = f"(?!{_any(negs)})" if negs else ""
        body += ".*"
    else:
        alts = []
        for i, (neg, rx) in enumerate(rules):
            if neg:
                continue
            later = [r for n, r in rules[i + 1 :] if n]
            alts.append((f"(?!{_any(later)})" if later else "") + rx)
        body = _any(alts)
    if spec.types:
        unknown = [t for t in spec.types if t not in FILE_TYPES]
        if unknown:
            raise SearchError(
                f"unknown file type {unknown[0]!r}; rlm-mcp search --type-list lists them"
            )
        body = f"(?={_any(_one(g) for t in spec.types for g in FILE_TYPES[t])})" + body
    try:
        return re.compile("(?s)" + body)
    except re.error as exc:
        raise SearchError(f"invalid glob {list(spec.globs)!r}: {exc}") from None


def paths_matching(paths: Iterable[str], spec: GlobSpec) -> list[str]:
    """Those of ``paths`` that ``spec`` selects (see :func:`glob_regex`), in their order."""
    rx = glob_regex(spec)
    return [p for p in paths if rx.match(p)]
