"""The functions model code calls in the REPL: one table, everything derived from it.

:data:`REPL_FUNCTIONS` is the single list. The prompt's function list, the
reserved names the sandbox restores after each cell, the names ``SHOW_VARS``
hides, and the host functions are all generated from it; a test checks the
README lists the same names. To add a ``repo.*`` function: a row here, a
method on :class:`RepoApi` (same file), and the index operation it calls.

``repo.*`` functions run on the host against the index (the worker only sees
JSON) and record what they returned as evidence. The prelude runs inside the
sandbox and defines ``answer``, ``FINAL``, ``FINAL_VAR`` and ``SHOW_VARS``;
``llm_query``, ``llm_query_batched`` and ``rlm_query`` are bridged by the
engine (or refused by ``rlm_exec``, which runs without a model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rlm_mcp.config import SandboxSettings
from rlm_mcp.engine.grounding import check_citations
from rlm_mcp.engine.locate import PROGRAM as LOCATE_PROGRAM
from rlm_mcp.engine.result import Candidate, EvidenceLog
from rlm_mcp.errors import SandboxUnavailable
from rlm_mcp.index import GrepHit
from rlm_mcp.index.model import Definition, LoadReport, Reference
from rlm_mcp.index.search.grep import grep_block
from rlm_mcp.schemas import (
    CallerOut,
    SearchHitOut,
    SymbolOut,
    caller,
    reference,
    search_hit,
    symbol,
)
from sandbox import SandboxError, Session, SessionConfig

__all__ = [
    "LLM_FUNCTIONS",
    "PRELUDE",
    "REPL_FUNCTIONS",
    "RESERVED",
    "ReplFunction",
    "RepoApi",
    "RepositoryLike",
    "prompt_function_list",
    "repo_functions",
    "session_config",
    "start_session",
]


class RepositoryLike(Protocol):
    """What the engine needs from a repository: :class:`rlm_mcp.index.Repository` has it all.

    Plain texts given to the library are indexed as one-file repositories, so
    every context the engine sees is a repository.
    """

    @property
    def root(self) -> Path: ...

    @property
    def report(self) -> LoadReport:
        """What the load found; the root prompt describes the repository from it."""
        ...

    def partial_note(self) -> str | None:
        """Why results from symbols may be incomplete now, or ``None`` once they are not."""
        ...

    def files(self, glob: str = "**") -> list[str]: ...

    def text(self, path: str) -> str: ...

    def read(self, path: str, start: int = 1, end: int | None = None) -> str: ...

    def grep(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        *,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> Sequence[GrepHit]: ...

    def search(
        self, query: str, limit: int = 20, glob: str | None = None, *, exclude_tests: bool = False
    ) -> Sequence[Candidate]: ...

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> Sequence[Definition]: ...

    def definition(self, name: str) -> Sequence[Definition]: ...

    def references(self, name: str, limit: int = 200) -> Sequence[Reference]: ...

    def callers(
        self, name: str, limit: int = 200
    ) -> Sequence[tuple[Reference, Definition | None]]: ...

    def enclosing(self, path: str, line: int) -> Definition | None: ...

    def outline(self, path: str) -> Sequence[Definition]: ...

    def repo_map(self, max_tokens: int = 1024, focus: str | Sequence[str] | None = None) -> str: ...

    def layout(self, depth: int = 2) -> str: ...


@dataclass(frozen=True, slots=True)
class ReplFunction:
    """One name model code can call: as written in code, its signature and what it does."""

    name: str
    signature: str
    doc: str
    host: bool = True
    """Served by the host (:class:`RepoApi`); False: REPL-side code the prelude defines."""


REPL_FUNCTIONS: tuple[ReplFunction, ...] = (
    ReplFunction(
        "repo.locate",
        "(question, k=8, glob=None, exclude_tests=False) -> list[dict]",
        "where/what-breaks questions, start here: ranked search, then sub-model calls judge "
        "each candidate's code; dicts have path, line, end_line, qualname, kind, relevant, "
        "reason (only relevant or unjudged places)",
        host=False,
    ),
    ReplFunction(
        "repo.search",
        "(query, limit=20, glob=None, exclude_tests=False) -> list[dict]",
        "ranked search for a question or identifier (names, docs, the question's words in "
        "the code, and the callers of a `name` it asks about); dicts have path, line, "
        "end_line, qualname, kind, snippet, score, signals",
    ),
    ReplFunction(
        "repo.files", "(glob='**') -> list[str]", "paths of indexed files matching a glob"
    ),
    ReplFunction(
        "repo.grep",
        "(pattern, glob=None, max_results=100, ignore_case=False, fixed=False, offset=0, "
        "context=0) -> list[str]",
        "regex search (fixed=True: a literal string); each hit is 'path:line:text', with "
        "context=N the N lines around it as 'path-line-text'",
    ),
    ReplFunction(
        "repo.symbols",
        "(query, kind=None, path_glob=None, match='auto', limit=50) -> list[dict]",
        "find definitions by name (exact, prefix, substring or regex; match='regex', query='.*' "
        "lists all); dicts have name, qualname, kind, path, line, end_line, signature (with the "
        "parameters), doc",
    ),
    ReplFunction(
        "repo.definition", "(name) -> list[dict]", "where a name or Class.method is defined"
    ),
    ReplFunction(
        "repo.references", "(name, limit=200) -> list[str]", "where a name is used, as 'path:line'"
    ),
    ReplFunction(
        "repo.callers",
        "(name, limit=200) -> list[dict]",
        "each use of a name with the function/class that contains it: path, line, caller "
        "(qualname), caller_kind",
    ),
    ReplFunction("repo.outline", "(path) -> list[dict]", "the definitions in one file, in order"),
    ReplFunction(
        "repo.read",
        "(path, start=1, end=None) -> str",
        "file text with line numbers ('  12| code')",
    ),
    ReplFunction("repo.text", "(path) -> str", "a file's raw text (no line numbers)"),
    ReplFunction(
        "repo.enclosing",
        "(path, line) -> dict | None",
        "the innermost function/class containing a line (e.g. of a grep hit)",
    ),
    ReplFunction(
        "repo.verify",
        "(text) -> dict",
        "check the paths, path:line citations and `symbols` in a draft answer against the "
        "index: {{'verified': [...], 'unknown': [{{'text', 'nearest'}}]}}",
    ),
    ReplFunction(
        "repo.repo_map",
        "(max_tokens=1024, focus=None) -> str",
        "ranked overview of important symbols",
    ),
    ReplFunction("repo.layout", "(depth=2) -> str", "directory tree with file counts"),
    ReplFunction(
        "llm_query",
        "(prompt, model=None) -> str",
        "ask a sub-model about text you extracted (it sees only the prompt; ~{sub_window} tokens max)",
    ),
    ReplFunction(
        "llm_query_batched",
        "(prompts, model=None) -> list[str]",
        "many llm_query calls run concurrently; use it for map-style work over chunks",
    ),
    ReplFunction(
        "rlm_query",
        "(prompt, context=None) -> str",
        "a recursive RLM with its own REPL over `context` (a string) or the repository",
    ),
    ReplFunction("FINAL", "(value)", "finish: set the final answer to str(value)"),
    ReplFunction(
        "FINAL_VAR", "(name)", "finish: set the final answer to the variable called `name`"
    ),
    ReplFunction("SHOW_VARS", "()", "list the variables you have defined"),
)
"""Every name model code can call, in the order the prompt lists them."""

LLM_FUNCTIONS = ("llm_query", "llm_query_batched", "rlm_query")
"""The host functions that call a model (bridged by the engine)."""

RESERVED = frozenset(f.name.split(".", 1)[0] for f in REPL_FUNCTIONS)
"""Names the sandbox restores after each cell, so model code cannot shadow them."""


def prompt_function_list(sub_window: int) -> str:
    """The "Functions" section of the root prompt."""
    return "\n".join(
        f"- {f.name}{f.signature}: {f.doc.format(sub_window=sub_window)}" for f in REPL_FUNCTIONS
    )


_PRELUDE = '''
import re, json, math, collections, itertools, functools

answer = {"content": "", "ready": False}
_RLM_HIDDEN = {hidden!r}


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


final = Final = FINAL  # small models write these; the answer still comes from running code


def _rlm_bind_locate(source):
    ns = {"__name__": "rlm_locate"}
    exec(compile(source, "<repo.locate>", "exec"), ns)
    program = ns["locate"]

    def locate(question, k=8, glob=None, exclude_tests=False):
        """Ranked, judged path:line locations for a question (see the function list)."""
        g = globals()
        return program(
            question, k, repo=g["repo"], llm_query_batched=g["llm_query_batched"],
            glob=glob, exclude_tests=exclude_tests,
        )

    repo.locate = locate


_rlm_bind_locate({locate_source!r})
del _rlm_bind_locate
'''

_MODULES = {"re", "json", "math", "collections", "itertools", "functools"}
PRELUDE = _PRELUDE.replace(
    "{hidden!r}",
    repr(
        sorted(
            _MODULES | RESERVED | {"answer", "context", "candidates", "located", "final", "Final"}
        )
    ),
).replace("{locate_source!r}", repr(LOCATE_PROGRAM))
"""Runs in every fresh REPL before model code: the answer slot and the FINAL functions."""


class RepoApi:
    """The host side of ``repo.*``: one method per ``repo.`` row of :data:`REPL_FUNCTIONS`.

    Results are plain JSON values, the shapes of :mod:`rlm_mcp.schemas` (the MCP tools'
    too); what a call returned is recorded as evidence.
    """

    def __init__(self, repo: RepositoryLike, evidence: EvidenceLog) -> None:
        self._repo = repo
        self._evidence = evidence

    def search(
        self, query: str, limit: int = 20, glob: str | None = None, exclude_tests: bool = False
    ) -> list[SearchHitOut]:
        hits = [
            search_hit(h)
            for h in self._repo.search(query, int(limit), glob, exclude_tests=bool(exclude_tests))
        ]
        for h in hits[:5]:
            self._evidence.add(h["path"], h["line"], h["line"])
        return hits

    def files(self, glob: str = "**") -> list[str]:
        return list(self._repo.files(glob))

    def read(self, path: str, start: int = 1, end: int | None = None) -> str:
        text = self._repo.read(path, start, end)
        last = start + max(0, text.count("\n") - (1 if text.endswith("\n") else 0))
        self._evidence.add(path, max(1, start), end if end is not None else last)
        return text

    def grep(
        self,
        pattern: str,
        glob: str | None = None,
        max_results: int = 100,
        ignore_case: bool = False,
        fixed: bool = False,
        offset: int = 0,
        context: int = 0,
    ) -> list[str]:
        hits = self._repo.grep(
            pattern,
            glob,
            max_results,
            ignore_case,
            fixed=bool(fixed),
            offset=int(offset),
            context=int(context),
        )
        for hit in hits[:20]:
            self._evidence.add(hit.path, hit.line, hit.line)
        return [grep_block(hit) for hit in hits]

    def symbols(
        self,
        query: str,
        kind: str | None = None,
        path_glob: str | None = None,
        match: str = "auto",
        limit: int = 50,
    ) -> list[SymbolOut]:
        return [symbol(d) for d in self._repo.symbols(query, kind, path_glob, match, limit)]

    def definition(self, name: str) -> list[SymbolOut]:
        found = [symbol(d) for d in self._repo.definition(name)]
        for d in found[:10]:
            self._evidence.add(d["path"], d["line"], d["end_line"] or d["line"])
        return found

    def references(self, name: str, limit: int = 200) -> list[str]:
        return [reference(r) for r in self._repo.references(name, limit)]

    def callers(self, name: str, limit: int = 200) -> list[CallerOut]:
        return [caller(ref, d) for ref, d in self._repo.callers(name, limit)]

    def enclosing(self, path: str, line: int) -> SymbolOut | None:
        found = self._repo.enclosing(path, int(line))
        if found is None:
            return None
        d = symbol(found)
        self._evidence.add(path, d["line"], d["end_line"] or d["line"])
        return d

    def text(self, path: str) -> str:
        body = self._repo.text(path)
        self._evidence.add(path, 1, body.count("\n") + 1)
        return body

    def outline(self, path: str) -> list[SymbolOut]:
        return [symbol(d) for d in self._repo.outline(path)]

    def verify(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError("repo.verify expects the draft answer as a string")
        cites = check_citations(self._repo, text)
        return {
            "verified": [c.text for c in cites if c.verified],
            "unknown": [
                {"text": c.text, "nearest": list(c.nearest)} for c in cites if not c.verified
            ],
        }

    def repo_map(self, max_tokens: int = 1024, focus: Any = None) -> str:
        return self._repo.repo_map(max_tokens, focus)

    def layout(self, depth: int = 2) -> str:
        return self._repo.layout(depth)


def repo_functions(repo: RepositoryLike, evidence: EvidenceLog) -> dict[str, Callable[..., Any]]:
    """The host functions for every ``repo.*`` row of :data:`REPL_FUNCTIONS`."""
    api = RepoApi(repo, evidence)
    return {
        f.name: getattr(api, f.name.removeprefix("repo."))
        for f in REPL_FUNCTIONS
        if f.name.startswith("repo.") and f.host
    }


def session_config(
    sandbox: SandboxSettings,
    root: Path,
    *,
    exec_timeout: float,
    output_limit: int | None = None,
    readable_paths: tuple[Path, ...] = (),
    lazy_text: dict[str, Path] | None = None,
) -> SessionConfig:
    """The sandbox configuration for a REPL over ``root`` (the engine's and ``rlm_exec``'s)."""
    return SessionConfig(
        root=root if root.is_dir() else root.parent,
        readable_paths=readable_paths,
        lazy_text=lazy_text or {},
        prelude=PRELUDE,
        reserved=RESERVED,
        exec_timeout=exec_timeout,
        output_limit=output_limit if output_limit is not None else sandbox.output_limit_chars,
        memory_bytes=sandbox.memory_mb * 1024 * 1024 if sandbox.memory_mb else None,
        cpu_seconds=sandbox.cpu_seconds,
        allow_unsafe=sandbox.allow_unsafe,
    )


def start_session(config: SessionConfig, host: dict[str, Callable[..., Any]]) -> Session:
    """Start a REPL worker (blocking); the sandbox's errors become :class:`SandboxUnavailable`."""
    session = Session(config, host)
    try:
        session.start()
    except SandboxError as exc:
        session.close()
        raise SandboxUnavailable(str(exc)) from None
    return session
