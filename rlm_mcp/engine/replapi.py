"""The functions model code calls in the REPL, built on the host side.

``repo.*`` functions run on the host against the index (the worker only sees
JSON), and record what they returned as evidence. The prelude runs inside the
sandbox and defines ``answer``, ``FINAL``, ``FINAL_VAR`` and ``SHOW_VARS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Protocol

from rlm_mcp.engine.result import EvidenceLog

__all__ = ["PRELUDE", "RESERVED", "RepositoryLike", "repo_functions"]


class RepositoryLike(Protocol):
    """The slice of :class:`rlm_mcp.index.Repository` the engine uses."""

    @property
    def root(self) -> Path: ...

    def files(self, glob: str = "**") -> list[str]: ...

    def text(self, path: str) -> str: ...

    def read(self, path: str, start: int = 1, end: int | None = None) -> str: ...

    def grep(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
    ) -> Sequence[Any]: ...

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> Sequence[Any]: ...

    def definition(self, name: str) -> Sequence[Any]: ...

    def references(self, name: str, limit: int = 200) -> Sequence[Any]: ...

    def callers(self, name: str, limit: int = 200) -> Sequence[tuple[Any, Any]]: ...

    def enclosing(self, path: str, line: int) -> Any: ...

    def outline(self, path: str) -> Sequence[Any]: ...

    def repo_map(self, max_tokens: int = 1024, focus: Any = None) -> str: ...

    def layout(self, depth: int = 2) -> str: ...


PRELUDE = '''
import re, json, math, collections, itertools, functools

answer = {"content": "", "ready": False}
_RLM_HIDDEN = {
    "re", "json", "math", "collections", "itertools", "functools", "answer", "context",
    "FINAL", "FINAL_VAR", "SHOW_VARS", "llm_query", "llm_query_batched", "rlm_query", "repo",
}


def FINAL(value=None, answer=None):
    """Finish the query with ``value`` as the final answer."""
    if value is None:
        value = answer
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("FINAL got an empty answer (None or ''): compute the answer first, then call FINAL(answer)")
    text = value if isinstance(value, str) else str(value)
    globals()["answer"] = {"content": text, "ready": True}
    return "final answer set"


def FINAL_VAR(name):
    """Finish the query with the variable called ``name`` as the final answer."""
    g = globals()
    if not isinstance(name, str) or name not in g:
        raise NameError(f"FINAL_VAR: no variable named {name!r}; call SHOW_VARS() to list them")
    return FINAL(g[name])


def SHOW_VARS():
    """List the variables defined so far, with their types and sizes."""
    rows = []
    for key, val in sorted(globals().items()):
        if key.startswith("_") or key in _RLM_HIDDEN:
            continue
        try:
            size = len(val)
        except Exception:
            size = None
        rows.append(f"{key}: {type(val).__name__}" + (f" (len {size})" if size is not None else ""))
    text = "\\n".join(rows) or "(no variables yet)"
    print(text)
    return None
'''

RESERVED = frozenset(
    {
        "FINAL",
        "FINAL_VAR",
        "SHOW_VARS",
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "repo",
    }
)


def _plain(item: Any) -> Any:
    if is_dataclass(item) and not isinstance(item, type):
        data = asdict(item)
        if "start_line" in data:
            data["line"] = data.pop("start_line")
        return data
    return item


def _def_dict(item: Any) -> dict[str, Any]:
    d = _plain(item)
    if isinstance(d, dict):
        return {
            "name": d.get("name"),
            "qualname": d.get("qualname"),
            "kind": d.get("kind"),
            "path": d.get("path"),
            "line": d.get("line"),
            "end_line": d.get("end_line"),
            "signature": d.get("signature", ""),
            "doc": d.get("doc", ""),
        }
    return {"value": str(d)}


def repo_functions(repo: RepositoryLike, evidence: EvidenceLog) -> dict[str, Callable[..., Any]]:
    """Host functions exposed as ``repo.<name>`` in the REPL; results are JSON values."""

    def files(glob: str = "**") -> list[str]:
        return list(repo.files(glob))

    def read(path: str, start: int = 1, end: int | None = None) -> str:
        text = repo.read(path, start, end)
        last = start + max(0, text.count("\n") - (1 if text.endswith("\n") else 0))
        evidence.add(path, max(1, start), end if end is not None else last)
        return text

    def grep(
        pattern: str, glob: str | None = None, max_results: int = 100, ignore_case: bool = False
    ) -> list[str]:
        hits = repo.grep(pattern, glob, max_results, ignore_case)
        for hit in hits[:20]:
            evidence.add(hit.path, hit.line, hit.line)
        return [str(hit) for hit in hits]

    def symbols(
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return [_def_dict(d) for d in repo.symbols(query, kind, path_glob, match, limit)]

    def definition(name: str) -> list[dict[str, Any]]:
        found = [_def_dict(d) for d in repo.definition(name)]
        for d in found[:10]:
            if isinstance(d.get("path"), str) and isinstance(d.get("line"), int):
                evidence.add(d["path"], d["line"], d.get("end_line") or d["line"])
        return found

    def references(name: str, limit: int = 200) -> list[str]:
        return [f"{r.path}:{r.line}" for r in repo.references(name, limit)]

    def callers(name: str, limit: int = 200) -> list[dict[str, Any]]:
        found = []
        for ref, enclosing in repo.callers(name, limit):
            d = _def_dict(enclosing) if enclosing is not None else None
            found.append(
                {
                    "path": ref.path,
                    "line": ref.line,
                    "caller": d["qualname"] if d else None,
                    "caller_kind": d["kind"] if d else None,
                }
            )
        return found

    def enclosing(path: str, line: int) -> dict[str, Any] | None:
        found = repo.enclosing(path, int(line))
        if found is None:
            return None
        d = _def_dict(found)
        evidence.add(path, d["line"], d["end_line"] or d["line"])
        return d

    def text(path: str) -> str:
        body = repo.text(path)
        evidence.add(path, 1, body.count("\n") + 1)
        return body

    def outline(path: str) -> list[dict[str, Any]]:
        return [_def_dict(d) for d in repo.outline(path)]

    def repo_map(max_tokens: int = 1024, focus: Any = None) -> str:
        return repo.repo_map(max_tokens, focus)

    def layout(depth: int = 2) -> str:
        return repo.layout(depth)

    fns: dict[str, Callable[..., Any]] = {
        "files": files,
        "read": read,
        "grep": grep,
        "symbols": symbols,
        "definition": definition,
        "references": references,
        "callers": callers,
        "enclosing": enclosing,
        "text": text,
        "outline": outline,
        "repo_map": repo_map,
        "layout": layout,
    }
    return {f"repo.{name}": fn for name, fn in fns.items()}
