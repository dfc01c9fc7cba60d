"""The resumable run: every (question, method) pair ``repeats`` times, one JSON line per result.

Resume: on start the results file is read, a torn last line (a crash mid-write)
is cut off, and (question, method, repeat) triples already recorded for this
question set are skipped (a record without ``repeat``, from before repeats
existed, is repeat 0). Repeats are the outer loop: every repository's repeat 0
runs before any repeat 1, so a run cut short holds whole repeats where it can.
Each record is written with one ``write`` plus ``flush`` and ``fsync``, so an
interrupt leaves whole lines only.

Sampling: the model methods get ``temperature`` and, for repeat ``r``, the seed
``sampling_seed + r`` (repeat 0 uses ``sampling_seed`` itself), so a rerun asks
for the same samples while repeats still differ where the temperature lets them.

Budget: ``budget_seconds`` bounds this invocation's wall time;
``budget_usd`` bounds the spend recorded in the whole file (so a resumed run
does not get a fresh allowance). Both are checked before each pair; the RLM
is also given the remaining USD as its own ``max_cost_usd``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.eval.methods import (
    DEFAULT_SAMPLING_SEED,
    DEFAULT_TEMPERATURE,
    METHODS,
    NO_MODEL,
    MethodResult,
    RLMSettings,
    run_direct,
    run_retrieval,
    run_rlm,
    run_search,
)
from benchmarks.eval.questions import Question, QuestionSet, ensure_repos
from benchmarks.eval.report import repeat_of
from benchmarks.eval.scoring import score
from rlm_mcp.backends.base import LLMBackend
from rlm_mcp.backends.pricing import Pricing
from rlm_mcp.config import IndexSettings
from rlm_mcp.engine.calls import Sampling
from rlm_mcp.index import Repository, load

__all__ = [
    "RunConfig",
    "append_record",
    "dedupe",
    "method_key",
    "read_records",
    "repeat_of",
    "run_set",
]

RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True, slots=True)
class RunConfig:
    out: Path
    cache: Path
    window: int
    direct_max_output: int
    chars_per_token: float
    rlm: RLMSettings
    methods: tuple[str, ...] = METHODS
    budget_usd: Decimal | None = None
    budget_seconds: float | None = None
    max_questions: int | None = None
    source_root: Path | None = None
    order: str = "spread"
    only_repos: tuple[str, ...] = ()
    repeats: int = 1
    # ``None`` sends no temperature (or no seed) for providers without the field.
    temperature: float | None = DEFAULT_TEMPERATURE
    sampling_seed: int | None = DEFAULT_SAMPLING_SEED

    def seed_for(self, repeat: int) -> int | None:
        """The sampling seed of repeat ``repeat``: ``sampling_seed + repeat``."""
        return None if self.sampling_seed is None else self.sampling_seed + repeat


def _spread(items: list[str]) -> list[str]:
    """Smallest, largest, second smallest, ...: a run cut short still spans the sizes."""
    out: list[str] = []
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        out.append(items[lo])
        if hi != lo:
            out.append(items[hi])
        lo, hi = lo + 1, hi - 1
    return out


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Whole JSON lines of ``path``; with ``repair``, cut a torn last line off the file."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    if repair and raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(cut)
        raw = raw[:cut]
    records = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (set, question, method, repeat): the first (two runs may overlap)."""
    seen: set[tuple[Any, Any, Any, int]] = set()
    out = []
    for r in records:
        key = (r.get("set"), r.get("question_id"), r.get("method"), repeat_of(r))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def append_record(path: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _ordered(questions: Iterable[Question], max_questions: int | None) -> list[Question]:
    """The first ``max_questions`` questions, round-robin over repositories so sizes spread."""
    qs = list(questions)
    if max_questions is None or max_questions >= len(qs):
        return qs
    by_repo: dict[str, list[Question]] = {}
    for q in qs:
        by_repo.setdefault(q.repo, []).append(q)
    picked: list[Question] = []
    while len(picked) < max_questions:
        for repo_qs in by_repo.values():
            if repo_qs and len(picked) < max_questions:
                picked.append(repo_qs.pop(0))
    order = {q.id: i for i, q in enumerate(qs)}
    return sorted(picked, key=lambda q: order[q.id])


def method_key(method: str, cfg: RunConfig) -> str:
    """The method as records name it: ``rlm`` plus its strategy and prompt variant when not
    the defaults (``rlm:locate-first``, ``rlm:recipes``, ``rlm:locate-only:stop``)."""
    if method != "rlm":
        return method
    parts = ["rlm"]
    if cfg.rlm.strategy != "explore":
        parts.append(cfg.rlm.strategy)
    if cfg.rlm.variant != "default":
        parts.append(cfg.rlm.variant)
    return ":".join(parts)


def _sampling_mismatches(
    records: Iterable[dict[str, Any]], cfg: RunConfig
) -> dict[str, set[tuple[Any, Any]]]:
    """Per model method key, the other (temperature, seed of repeat 0) the file's records used."""
    keys = {method_key(m, cfg) for m in cfg.methods if m not in NO_MODEL}
    out: dict[str, set[tuple[Any, Any]]] = {}
    for r in records:
        key = r.get("method")
        if key not in keys:
            continue
        if "temperature" not in r:  # from before sampling was recorded
            out.setdefault(str(key), set()).add(("unrecorded", "unrecorded"))
            continue
        seed = r.get("sampling_seed")
        base = None if seed is None else int(seed) - repeat_of(r)
        if (r["temperature"], base) != (cfg.temperature, cfg.sampling_seed):
            out.setdefault(str(key), set()).add((r["temperature"], base))
    return out


async def run_set(
    qset: QuestionSet,
    cfg: RunConfig,
    backend: LLMBackend | None,
    *,
    pricing: Pricing,
    log: Callable[[str], None] = lambda _msg: None,
) -> str:
    """Run what is not done yet; returns why it stopped (``done`` or a budget message)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    results = cfg.out / RESULTS_FILE
    records = read_records(results, repair=True)
    digest = qset.digest
    mine = [r for r in records if r.get("set") == digest]
    done = {(r["question_id"], r["method"], repeat_of(r)) for r in mine}
    for key, other in sorted(_sampling_mismatches(mine, cfg).items()):
        seen = ", ".join(f"temperature={t} seed={b}" for t, b in sorted(other, key=str))
        log(
            f"warning: {key} records in {results} were sampled with {seen}, not "
            f"temperature={cfg.temperature} seed={cfg.sampling_seed}; resume skips them "
            "all the same (use another --out to keep settings apart)"
        )
    spent = sum(
        (Decimal(str(r.get("cost_usd", "0"))) for r in records if r.get("set") == digest),
        Decimal(0),
    )
    started = time.monotonic()
    paths = ensure_repos(qset, cfg.cache, source_root=cfg.source_root)
    pool = [q for q in qset.questions if not cfg.only_repos or q.repo in cfg.only_repos]
    questions = _ordered(pool, cfg.max_questions)
    repos_in_order = list(dict.fromkeys(q.repo for q in questions))
    if cfg.order == "spread":
        repos_in_order = _spread(repos_in_order)
    for repeat, repo_name in ((i, n) for i in range(cfg.repeats) for n in repos_in_order):
        repo_qs = [q for q in questions if q.repo == repo_name]
        todo = [
            (m, q)
            for m in cfg.methods
            for q in repo_qs
            if (q.id, method_key(m, cfg), repeat) not in done
        ]
        if not todo:
            continue
        info = qset.repos[repo_name]
        repo: Repository = load(
            paths[repo_name], IndexSettings(cache_dir=cfg.cache / "index", watch=False)
        )
        try:
            # Method-major within a repository, so direct prompts that share the
            # repository prefix run back to back (local servers reuse the KV cache).
            for method, q in todo:
                if (
                    cfg.budget_seconds is not None
                    and time.monotonic() - started >= cfg.budget_seconds
                ):
                    return f"time budget of {cfg.budget_seconds:g}s spent"
                if cfg.budget_usd is not None and spent >= cfg.budget_usd:
                    return f"USD budget of {cfg.budget_usd} spent (${spent})"
                rep = f" repeat {repeat}" if cfg.repeats > 1 else ""
                log(f"[{time.strftime('%H:%M:%S')}] {method:9} {q.id}{rep}")
                res = await _run_one(
                    method, q, repo, info.tokens, cfg, backend, pricing, spent, repeat
                )
                sampled = method not in NO_MODEL
                sc = score(q, res.answer)
                record = {
                    "set": digest,
                    "question_id": q.id,
                    "repo": q.repo,
                    "repo_tokens": info.tokens,
                    "kind": q.kind,
                    "language": q.expected.get("language"),
                    "method": method_key(method, cfg),
                    "repeat": repeat,
                    "temperature": cfg.temperature if sampled else None,
                    "sampling_seed": cfg.seed_for(repeat) if sampled else None,
                    "answer": res.answer[:4000],
                    "score": sc.as_dict(),
                    "status": res.status,
                    "error": res.error,
                    "input_tokens": res.input_tokens,
                    "output_tokens": res.output_tokens,
                    "cost_usd": str(res.cost_usd),
                    "wall_seconds": round(res.wall_seconds, 3),
                    "window": cfg.window,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    **res.extra,
                }
                append_record(results, record)
                spent += res.cost_usd
                log(
                    f"           -> {sc.value:.2f} ({sc.detail}) {res.status} "
                    f"{res.wall_seconds:.0f}s answer={res.answer[:80]!r}"
                )
        finally:
            repo.close()
    return "done"


async def _run_one(
    method: str,
    q: Question,
    repo: Repository,
    repo_tokens: int,
    cfg: RunConfig,
    backend: LLMBackend | None,
    pricing: Pricing,
    spent: Decimal,
    repeat: int = 0,
) -> MethodResult:
    if method == "retrieval":
        return run_retrieval(q, repo)
    if method == "search":
        return run_search(q, repo)
    if backend is None:
        raise ValueError(f"method {method} needs a model endpoint")
    if method == "direct":
        return await run_direct(
            backend,
            q,
            repo,
            window=cfg.window,
            max_output=cfg.direct_max_output,
            chars_per_token=cfg.chars_per_token,
            repo_tokens=repo_tokens,
            pricing=pricing,
            temperature=cfg.temperature,
            seed=cfg.seed_for(repeat),
        )
    if method == "rlm":
        remaining = None if cfg.budget_usd is None else cfg.budget_usd - spent
        sampling = Sampling(temperature=cfg.temperature, seed=cfg.seed_for(repeat))
        return await run_rlm(
            backend, q, repo, cfg.rlm, pricing, max_cost=remaining, sampling=sampling
        )
    raise ValueError(f"unknown method {method!r}")
