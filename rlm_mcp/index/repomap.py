"""A ranked, token-budgeted overview of a repository.

Files form a graph: file A referencing a name defined in file B is an edge
A→B weighted by the number of uses. PageRank over that graph (personalised
toward the focus paths or names, when given) says which files the rest of the
code leans on; their most referenced definitions are rendered first, until
the token budget is spent. This is the map a model reads before it greps.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import Protocol

from rlm_mcp.index.model import Definition
from rlm_mcp.index.storage import DefQuery, IndexStore

__all__ = ["MapSource", "pagerank", "render_repo_map"]


class MapSource(Protocol):
    """What the map needs besides the store: the file list and name look-ups."""

    @property
    def version(self) -> int: ...

    def files(self, glob: str = "**") -> list[str]: ...

    def norm(self, path: str) -> str: ...

    def definition(self, name: str) -> list[Definition]: ...


DAMPING = 0.85
MAX_ITER = 50
TOLERANCE = 1e-8
MAP_KINDS = frozenset(
    {
        "function",
        "method",
        "class",
        "interface",
        "struct",
        "enum",
        "trait",
        "module",
        "type",
        "macro",
        "constant",
    }
)


def pagerank(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, int]],
    personalization: dict[str, float] | None = None,
) -> dict[str, float]:
    """Power-iteration PageRank; dangling mass goes to the personalisation vector."""
    if not nodes:
        return {}
    index = {n: i for i, n in enumerate(nodes)}
    size = len(nodes)
    out_weight = [0.0] * size
    adj: list[list[tuple[int, float]]] = [[] for _ in range(size)]
    for a, b, w in edges:
        ia, ib = index.get(a), index.get(b)
        if ia is None or ib is None or ia == ib:
            continue
        adj[ia].append((ib, float(w)))
        out_weight[ia] += float(w)
    total = sum(personalization.get(n, 0.0) for n in nodes) if personalization else 0.0
    if total > 0 and personalization:
        pers = [personalization.get(n, 0.0) / total for n in nodes]
    else:
        pers = [1.0 / size] * size
    rank = list(pers)
    for _ in range(MAX_ITER):
        new = [(1.0 - DAMPING) * p for p in pers]
        dangling = 0.0
        for i, r in enumerate(rank):
            if out_weight[i] == 0:
                dangling += r
                continue
            share = DAMPING * r / out_weight[i]
            for j, wt in adj[i]:
                new[j] += share * wt
        if dangling:
            for i in range(size):
                new[i] += DAMPING * dangling * pers[i]
        delta = sum(abs(x - y) for x, y in zip(new, rank, strict=True))
        rank = new
        if delta < TOLERANCE:
            break
    return dict(zip(nodes, rank, strict=True))


def _focus_weights(repo: MapSource, files: Sequence[str], focus: Sequence[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    fileset = set(files)
    for item in focus:
        f = item.strip()
        if not f:
            continue
        norm = repo.norm(f)
        if norm in fileset:
            weights[norm] = weights.get(norm, 0.0) + 1.0
            continue
        matched = [p for p in files if p.startswith(norm.rstrip("/") + "/")] if norm else []
        if not matched and any(c in f for c in "*?["):
            matched = repo.files(f)
        if matched:
            for p in matched:
                weights[p] = weights.get(p, 0.0) + 1.0 / len(matched)
            continue
        for d in repo.definition(f):
            weights[d.path] = weights.get(d.path, 0.0) + 1.0
    return weights


_Inputs = tuple[list[tuple[str, str, int]], dict[str, int], list[Definition]]
_cache: weakref.WeakKeyDictionary[MapSource, tuple[int, _Inputs]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _inputs(repo: MapSource, store: IndexStore) -> _Inputs:
    """The reference graph, reference counts and mappable definitions, cached per index version."""
    version = repo.version
    with _cache_lock:
        hit = _cache.get(repo)
    if hit is not None and hit[0] == version:
        return hit[1]
    defs = store.find_defs(DefQuery("all", kinds=MAP_KINDS, limit=10_000_000))
    inputs = (store.edges(), store.ref_counts(), defs)
    with _cache_lock:
        _cache[repo] = (version, inputs)
    return inputs


def render_repo_map(
    repo: MapSource,
    store: IndexStore,
    max_tokens: int = 1024,
    focus: str | Sequence[str] | None = None,
) -> str:
    """Render ``path:`` headers with ``kind qualname (line)`` lines, best first."""
    files = repo.files()
    if not files or max_tokens <= 0:
        return ""
    focus_list = [focus] if isinstance(focus, str) else list(focus or [])
    edges, ref_counts, all_defs = _inputs(repo, store)
    pers = _focus_weights(repo, files, focus_list) if focus_list else None
    ranks = pagerank(files, edges, pers)
    focus_names = {f.rsplit(".", 1)[-1] for f in focus_list}
    defs_by_file: dict[str, list[tuple[float, Definition]]] = {}
    for d in all_defs:
        score = math.log1p(ref_counts.get(d.name, 0)) + (5.0 if d.name in focus_names else 0.0)
        if d.qualname == d.name:
            score += 0.5
        defs_by_file.setdefault(d.path, []).append((score, d))
    order = sorted(files, key=lambda p: (-ranks.get(p, 0.0), p))
    budget = max_tokens * 4
    used = 0
    out: list[str] = []
    for path in order:
        header = f"{path}:"
        if used + len(header) + 1 > budget:
            break
        out.append(header)
        used += len(header) + 1
        defs = sorted(defs_by_file.get(path, []), key=lambda sd: (-sd[0], sd[1].start_line))
        shown: list[Definition] = []
        for _score, d in defs:
            line = f"  {d.kind} {d.qualname} ({d.start_line})"
            if used + len(line) + 1 > budget:
                break
            shown.append(d)
            used += len(line) + 1
        out.extend(
            f"  {d.kind} {d.qualname} ({d.start_line})"
            for d in sorted(shown, key=lambda x: x.start_line)
        )
        if used >= budget:
            break
    return "\n".join(out)
