"""Fused ranking ablation: each signal alone, the fusion, and variants, on the dev set.

Usage: ``python -m benchmarks.fusion_bench [--set dev] [--variants all]``

Needs the dev set (``python -m benchmarks.eval generate --set dev``). Loads each
repository once, then scores ``Repository.search(question, limit=10)`` (as the
eval's ``search`` method does) under each variant of :mod:`rlm_mcp.index.search.fused`,
next to the ranked-grep floor (``retrieval``). Prints the mean score per kind
(locate: exact location; impact: F1 over callers; how: recall@5), which is how
the fusion's weights were chosen. Flask, requests and sqlfluff are not in the
dev set and must never be added to it for this.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.eval.cli import NAMED_SETS
from benchmarks.eval.floor import ranked_grep_answer
from benchmarks.eval.questions import ensure_repos, load_set
from benchmarks.eval.scoring import score
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
from rlm_mcp.index.search import fused

LIMIT = 10
KINDS = ("locate", "impact", "how")


@contextmanager
def patched(**values: object) -> Iterator[None]:
    old = {k: getattr(fused, k) for k in values}
    for k, v in values.items():
        setattr(fused, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(fused, k, v)


def _only(signal: str) -> dict[str, object]:
    w = {s: (1.0 if s == signal else 0.0) for s in fused.SIGNALS}
    return {"WEIGHTS": w}


VARIANTS: dict[str, dict[str, object]] = {
    "bm25 only": _only("bm25"),
    "grep only": _only("grep"),
    "callers only": _only("callers"),
    "fused (default)": {},
    "fused, no test demotion": {"TEST_WEIGHT": 1.0},
    "fused, k=10": {"RRF_K": 10},
    "fused, k=20": {"RRF_K": 20},
    "fused, k=60": {"RRF_K": 60},
    "fused, bm25 1.0": {"WEIGHTS": {**fused.WEIGHTS, "bm25": 1.0}},
    "fused, bm25 2.0": {"WEIGHTS": {**fused.WEIGHTS, "bm25": 2.0}},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="dev")
    ap.add_argument("--cache", type=Path, default=Path("benchmarks/eval/results/cache"))
    args = ap.parse_args()
    qset = load_set(NAMED_SETS[args.set][0] if args.set in NAMED_SETS else Path(args.set))
    paths = ensure_repos(qset, args.cache)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    took: dict[str, list[float]] = defaultdict(list)
    for name in dict.fromkeys(q.repo for q in qset.questions):
        qs = [q for q in qset.questions if q.repo == name and q.kind in KINDS]
        repo = load(paths[name], IndexSettings(cache_dir=args.cache / "index", watch=False))
        try:
            root = paths[name]
            methods: dict[str, Callable[[str], str]] = {
                "ranked grep (floor)": lambda q, root=root: ranked_grep_answer(root, q)
            }
            for label in VARIANTS:
                methods[label] = lambda q, label=label, repo=repo: _search(
                    repo, q, VARIANTS[label], took
                )
            for label, run in methods.items():
                for q in qs:
                    scores[label][q.kind].append(score(q, run(q.question)).value)
        finally:
            repo.close()
    width = max(map(len, scores))
    print(f"{'method':{width}}  " + "  ".join(f"{k:>7}" for k in (*KINDS, "all")))
    for label, by_kind in scores.items():
        every = [v for k in KINDS for v in by_kind[k]]
        cells = [f"{statistics.mean(by_kind[k]):7.2f}" if by_kind[k] else "      -" for k in KINDS]
        print(f"{label:{width}}  " + "  ".join(cells) + f"  {statistics.mean(every):7.2f}")
    n = {k: len(v) for k, v in next(iter(scores.values())).items()}
    print(f"questions: {n}")
    ms = sorted(t * 1000 for t in took["fused (default)"]) or [0.0]
    print(f"fused search latency: p50 {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms")


def _search(
    repo: object, question: str, values: dict[str, object], took: dict[str, list[float]]
) -> str:
    with patched(**values):
        t0 = time.perf_counter()
        hits = repo.search(question, limit=LIMIT)  # type: ignore[attr-defined]
        if not values:
            took["fused (default)"].append(time.perf_counter() - t0)
    return "\n".join(f"{h.path}:{h.line}" for h in hits)


if __name__ == "__main__":
    main()
