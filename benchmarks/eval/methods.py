"""The methods compared on every question.

* ``rlm``: the RLM through :class:`~rlm_mcp.engine.core.RLMEngine`.
* ``direct``: one call with as much of the repository as fits the window
  (files in path order, numbered lines, cut at the window; how much was
  included is recorded).
* ``retrieval``: no LLM at all, as a floor. On the stdlib kinds, the top
  grep/symbol/reference hit for the question's keywords; on the understanding
  kinds, plain ranked grep over the question's words
  (:mod:`benchmarks.eval.floor`), independent of our index.
* ``search``: no LLM; our own ranked search (``Repository.search``), its hits
  as ``path:line`` in rank order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.eval.floor import ranked_grep_answer
from benchmarks.eval.questions import Question
from rlm_mcp.backends.base import (
    Completion,
    CompletionRequest,
    LLMBackend,
    Message,
    estimate_tokens,
)
from rlm_mcp.backends.pricing import Pricing
from rlm_mcp.budget import Limits
from rlm_mcp.config import SandboxSettings
from rlm_mcp.engine import prompts
from rlm_mcp.engine.calls import Sampling
from rlm_mcp.engine.core import EngineOptions, ModelSpec, RLMEngine
from rlm_mcp.engine.strategy import STRATEGIES
from rlm_mcp.errors import BackendError, RlmMcpError
from rlm_mcp.index import Definition, Repository

__all__ = [
    "DEFAULT_SAMPLING_SEED",
    "DEFAULT_TEMPERATURE",
    "METHODS",
    "PROMPT_VARIANTS",
    "STRATEGIES",
    "MethodResult",
    "RLMSettings",
    "prompt_variant",
    "run_direct",
    "run_retrieval",
    "run_rlm",
    "run_search",
]

METHODS = ("retrieval", "search", "direct", "rlm")
# Methods that call no model.
NO_MODEL = frozenset({"retrieval", "search"})
SEARCH_LIMIT = 10
# Sampling for the model methods unless ``run`` is told otherwise: greedy and seeded, so a
# rerun asks the provider for the same samples (repeat r uses seed + r, see the runner).
DEFAULT_TEMPERATURE = 0.0
DEFAULT_SAMPLING_SEED = 20250601

DIRECT_SYSTEM = (
    "You answer questions about a code repository. The user message holds the repository's "
    "files (each starts with a '=== path ===' header; every line is prefixed with its line "
    "number), possibly cut short to fit your context window, then the question. Answer "
    "exactly in the format the question asks for, with no explanation."
)

# Stop sequences the ``stop`` and ``recipes`` variants add to every request: small models
# otherwise write the next "[turn N of M]" and invent REPL output themselves.
STOP_SEQUENCES = ("\n[turn ", "REPL output:", "\nAnswer: ")

# Small, opt-in prompt changes for A/B runs (--prompt-variant); "default" changes nothing.
PROMPT_VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "stop": {},
    "recipes": {
        "FIRST_TURN": prompts.FIRST_TURN + "\n\nRules for this REPL:\n"
        "- repo.files() returns path strings; repo.grep() returns 'path:line:text' strings; "
        "repo.symbols()/repo.definition() return dicts with 'path' and 'line'.\n"
        "- Never call FINAL in the same block as a search: print the result, read it next "
        "turn, then call FINAL.\n"
        "Recipes (adapt them):\n"
        "- where is the function whose docstring begins 'X': "
        "print(repo.grep(re.escape('first words of X'), max_results=5)); the def is a few "
        "lines above the hit: print(repo.read(path, line-5, line+1))\n"
        "- who calls f: print(repo.references('f')) then repo.outline(path) to name the "
        "enclosing functions\n"
        "- which class defines method m: print(repo.definition('m'))\n"
        "- count defs with a parameter p: "
        "print(len(repo.grep(r'def \\w+\\([^)]*\\bp\\b', glob='pkg/**', max_results=1000)))",
    },
}


@contextlib.contextmanager
def prompt_variant(name: str) -> Iterator[None]:
    """Temporarily replace prompt templates in :mod:`rlm_mcp.engine.prompts`."""
    changes = PROMPT_VARIANTS[name]
    saved = {k: getattr(prompts, k) for k in changes}
    try:
        for k, v in changes.items():
            setattr(prompts, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(prompts, k, v)


class StopBackend:
    """Wraps a backend and adds :data:`STOP_SEQUENCES` to every request."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.model = inner.model

    async def complete(self, request: CompletionRequest) -> Completion:
        stop = tuple(dict.fromkeys((*request.stop, *STOP_SEQUENCES)))
        return await self.inner.complete(dataclasses.replace(request, stop=stop))

    async def aclose(self) -> None:
        """The inner backend is closed by its owner."""


@dataclass(slots=True)
class MethodResult:
    answer: str
    status: str = "completed"
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RLMSettings:
    limits: Limits
    sandbox: SandboxSettings
    root_window: int
    sub_window: int
    root_max_output: int
    sub_max_output: int
    trajectory_dir: Path | None
    variant: str = "default"
    strategy: str = "explore"


# -- rlm --------------------------------------------------------------------------------------


async def run_rlm(
    backend: LLMBackend,
    question: Question,
    repo: Repository,
    settings: RLMSettings,
    pricing: Pricing,
    *,
    max_cost: Decimal | None = None,
    sampling: Sampling | None = None,
) -> MethodResult:
    """One RLM query; ``sampling`` (temperature, seed) goes to every root and sub call."""
    if settings.variant != "default":
        backend = StopBackend(backend)
    engine = RLMEngine(
        ModelSpec(backend, settings.root_window, settings.root_max_output),
        ModelSpec(backend, settings.sub_window, settings.sub_max_output),
        limits=settings.limits,
        sandbox=settings.sandbox,
        options=EngineOptions(pricing=pricing, strategy=settings.strategy),
        trajectory_dir=settings.trajectory_dir,
    )
    per_query = None
    if max_cost is not None:
        per_query = settings.limits.tighten({"max_cost_usd": max(Decimal(0), max_cost)})
    with prompt_variant(settings.variant):
        result = await engine.run(question.rlm_prompt, repo, limits=per_query, sampling=sampling)
    return MethodResult(
        answer=result.answer,
        status=result.status,
        error=result.error,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_usd=result.usage.cost_usd,
        wall_seconds=result.wall_seconds,
        extra={
            "iterations": result.iterations,
            "sub_calls": result.sub_calls,
            "depth": result.max_depth_reached,
            "limit": result.limit,
            "calls": result.usage.calls,
            "evidence": [str(e) for e in result.evidence[:20]],
            "trajectory": str(result.trajectory) if result.trajectory else None,
            "variant": settings.variant,
            "strategy": settings.strategy,
            "located": len(result.located),
        },
    )


# -- direct -----------------------------------------------------------------------------------


def repository_text(repo: Repository, max_chars: int) -> tuple[str, int, int, bool]:
    """Files in path order with numbered lines, cut at ``max_chars``.

    Returns the text, the number of source characters included (without the
    line-number prefixes and headers), the files begun, and whether it was cut.
    """
    parts: list[str] = []
    used = 0
    source_chars = 0
    files = 0
    for path in repo.files():
        try:
            text = repo.text(path)
        except RlmMcpError:
            continue
        header = f"=== {path} ===\n"
        if used + len(header) + 40 > max_chars:
            return "".join(parts), source_chars, files, True
        parts.append(header)
        used += len(header)
        files += 1
        for n, line in enumerate(text.splitlines(), 1):
            row = f"{n}| {line}\n"
            if used + len(row) > max_chars:
                parts.append("[... the rest of the repository was cut to fit the window ...]\n")
                return "".join(parts), source_chars, files, True
            parts.append(row)
            used += len(row)
            source_chars += len(line) + 1
    return "".join(parts), source_chars, files, False


def _is_overflow(exc: BackendError) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("context", "exceed", "too long", "maximum"))


async def run_direct(
    backend: LLMBackend,
    question: Question,
    repo: Repository,
    *,
    window: int,
    max_output: int,
    chars_per_token: float,
    repo_tokens: int,
    pricing: Pricing,
    temperature: float | None = DEFAULT_TEMPERATURE,
    seed: int | None = None,
) -> MethodResult:
    """One call with the repository's text; ``None`` for temperature or seed sends none."""
    started = time.monotonic()
    overhead = estimate_tokens(DIRECT_SYSTEM + question.prompt) * 2 + 120
    budget_chars = int(max(0, window - max_output - overhead) * chars_per_token)
    attempts = 0
    while True:
        attempts += 1
        text, source_chars, files, cut = repository_text(repo, budget_chars)
        included = estimate_tokens(" " * source_chars)
        note = (
            f"[The repository has {len(repo.files())} files and ~{repo_tokens:,} tokens; "
            f"the text above is {'only the first' if cut else 'all of it'}: {files} files, "
            f"~{included:,} tokens ({min(100.0, 100 * included / max(1, repo_tokens)):.1f}%).]"
        )
        user = f"{text}\n{note}\n\nQuestion: {question.prompt}"
        request = CompletionRequest(
            messages=(Message("system", DIRECT_SYSTEM), Message("user", user)),
            max_tokens=max_output,
            temperature=temperature,
            seed=seed,
        )
        try:
            completion = await backend.complete(request)
        except BackendError as exc:
            if _is_overflow(exc) and attempts < 4 and budget_chars > 2000:
                budget_chars = int(budget_chars * 0.75)
                continue
            return MethodResult(
                answer="",
                status="error",
                error=str(exc)[:500],
                wall_seconds=time.monotonic() - started,
                extra={"included_tokens": included, "attempts": attempts},
            )
        break
    model = completion.model or backend.model
    return MethodResult(
        answer=completion.text,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        cost_usd=pricing.cost(model, completion.usage),
        wall_seconds=time.monotonic() - started,
        extra={
            "included_tokens": included,
            "included_fraction": round(min(1.0, included / max(1, repo_tokens)), 4),
            "included_files": files,
            "truncated": cut,
            "attempts": attempts,
            "finish_reason": completion.finish_reason,
        },
    )


# -- retrieval (no LLM) -----------------------------------------------------------------------

_FUNC_KINDS = ("function", "method")


def _enclosing(repo: Repository, path: str, line: int, kinds: tuple[str, ...]) -> Definition | None:
    best: Definition | None = None
    for d in repo.outline(path):
        inside = d.kind in kinds and d.start_line <= line <= d.end_line
        if inside and (best is None or d.start_line >= best.start_line):
            best = d
    return best


def _backticked(text: str) -> str:
    m = re.search(r"`([^`]+)`", text)
    return m.group(1) if m else ""


def _retrieve(question: Question, repo: Repository) -> str:
    q = question.question
    if question.kind == "needle":
        m = re.search(r"begins: '(.+)'\?", q)
        if not m:
            return ""
        words = m.group(1).split()[:6]
        pattern = r"\s+".join(re.escape(w) for w in words)
        hits = repo.grep(pattern, max_results=1)
        if not hits:
            found = repo.symbols(max(words, key=len), limit=1)
            return f"{found[0].path}:{found[0].start_line}" if found else ""
        hit = hits[0]
        d = _enclosing(repo, hit.path, hit.line, _FUNC_KINDS)
        return f"{hit.path}:{d.start_line if d else hit.line}"
    if question.kind == "callers":
        name = _backticked(q)
        names: list[str] = []
        for ref in repo.references(name):
            d = _enclosing(repo, ref.path, ref.line, _FUNC_KINDS)
            if d is not None and d.name != name and d.name not in names:
                names.append(d.name)
        return ", ".join(names)
    if question.kind == "method_class":
        method = _backticked(q)
        for d in repo.definition(method):
            if "." in d.qualname:
                cls = d.qualname.rsplit(".", 2)[-2]
                out = [cls]
                for c in repo.definition(cls):
                    m2 = re.search(r"class\s+\w+\s*\(([^)]*)\)", c.signature)
                    if m2:
                        out += [b.strip().rsplit(".", 1)[-1] for b in m2.group(1).split(",")]
                        break
                return ", ".join(b for b in out if b and "=" not in b)
        return ""
    if question.kind == "count_params":
        param = re.findall(r"`([^`]+)`", q)
        scope = re.search(r"in `([^`]+)/`", q)
        glob = f"{scope.group(1)}/**" if scope else None
        p = re.escape(param[-1]) if param else ""
        hits = repo.grep(rf"def \w+\((?:[^)]*[,(\s*])?{p}\b", glob=glob, max_results=10_000)
        return str(len(hits))
    return ""


_FLOOR_KINDS = frozenset({"locate", "impact", "how"})


def run_retrieval(question: Question, repo: Repository) -> MethodResult:
    started = time.monotonic()
    try:
        if question.kind in _FLOOR_KINDS:
            answer = ranked_grep_answer(repo.root, question.question)
        else:
            answer = _retrieve(question, repo)
        status, error = "completed", None
    except RlmMcpError as exc:
        answer, status, error = "", "error", str(exc)
    return MethodResult(
        answer=answer, status=status, error=error, wall_seconds=time.monotonic() - started
    )


def run_search(question: Question, repo: Repository) -> MethodResult:
    """Our ranked search over the question text, hits as ``path:line`` lines, best first."""
    started = time.monotonic()
    try:
        hits = repo.search(question.question, limit=SEARCH_LIMIT)
        answer, status, error = "\n".join(f"{h.path}:{h.line}" for h in hits), "completed", None
    except RlmMcpError as exc:
        answer, status, error = "", "error", str(exc)
    return MethodResult(
        answer=answer, status=status, error=error, wall_seconds=time.monotonic() - started
    )
