"""A ranked, token-budgeted overview of a repository.

Files form a graph: file A referencing a name defined in file B is an edge
A→B weighted by the number of uses. PageRank over that graph (personalised
toward the focus paths or names, when given) says which files the rest of the
code leans on; their most referenced definitions are rendered first, until
the token budget is spent. This is the map a model reads before it greps.

Memory is bounded by the number of files, never by the number of references:
the store aggregates the graph (:meth:`~rlm_mcp.index.store.base.IndexStore.file_graph`,
at most ``MAX_OUT_EDGES`` edges per file) into flat integer arrays, PageRank
runs over those arrays, and only the definitions of the files a map shows are
read. The order PageRank gives (without focus) is kept per repository and
index version, and in the store's metadata under a fingerprint of the indexed
files, so a later call, or another process over the same index, renders at once.
When files change only in content and the order was slow to compute (a big
repository), the old order is shown while the new one is computed in the
background; :func:`prepare_repo_map` computes it ahead of the first call.
"""

from __future__ import annotations

import base64
import logging
import math
import sys
import threading
import time
import weakref
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, pairwise
from operator import mul, sub
from typing import Any, Protocol

from rlm_mcp.index.model import Definition, DefQuery, FileGraph
from rlm_mcp.index.store.base import IndexStore

__all__ = ["MapSource", "pagerank", "prepare_repo_map", "render_repo_map"]

log = logging.getLogger(__name__)


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
MAX_DEFINING_FILES = 8
"""Names defined in more files than this say little about which file a use points at."""
MAX_OUT_EDGES = 64
"""Edges kept per referencing file (its heaviest): the graph is at most this times the files."""
FOCUS_WORK = 20_000_000
"""Edge visits a focused map may spend on PageRank (a step visits every edge once): a
graph of more than FOCUS_WORK / MAX_ITER edges gets fewer steps, never below FOCUS_MIN_ITER.
The unfocused order is computed once per index version with every step."""
FOCUS_MIN_ITER = 10
REFRESH_AFTER_S = 1.0
"""An order that took longer than this to compute is shown stale while its successor (same
files, changed contents) is computed in the background, rather than holding the caller."""
DEFS_BATCH = 32
"""Files whose definitions are read (and their names counted) at once while rendering."""
META_KEY = "repo_map_order"
GRAPH_KEY = "repo_map_graph"
"""Where a graph that was slow to aggregate is kept (compressed) for later processes' focused maps."""
ORDER_FORMAT = f"1:{MAX_DEFINING_FILES}:{MAX_OUT_EDGES}:{DAMPING}:{MAX_ITER}:{TOLERANCE}"
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


@dataclass(frozen=True, slots=True)
class _Graph:
    """Edges by destination: node j's in-edges are ``in_src[in_start[j]:in_start[j + 1]]``."""

    size: int
    out_weight: array[float]
    in_start: array[int]
    in_src: array[int]
    in_weight: array[float]


def _graph(size: int, src: Sequence[int], dst: Sequence[int], weight: Sequence[float]) -> _Graph:
    """Compact adjacency over node ids ``0..size-1``; self-loops and ids < 0 are dropped."""
    out_weight = array("d", bytes(8 * size))
    counts = array("q", bytes(8 * (size + 1)))
    kept = 0
    for a, b, w in zip(src, dst, weight, strict=True):
        if a < 0 or b < 0 or a == b:
            continue
        out_weight[a] += float(w)
        counts[b + 1] += 1
        kept += 1
    in_start = array("q", accumulate(counts))
    fill = array("q", in_start)
    in_src = array("i", bytes(4 * kept))
    in_weight = array("d", bytes(8 * kept))
    for a, b, w in zip(src, dst, weight, strict=True):
        if a < 0 or b < 0 or a == b:
            continue
        k = fill[b]
        fill[b] = k + 1
        in_src[k] = a
        in_weight[k] = float(w)
    return _Graph(size, out_weight, in_start, in_src, in_weight)


def _iterate(g: _Graph, pers: Sequence[float], max_iter: int = MAX_ITER) -> list[float]:
    """Power-iteration PageRank; dangling mass goes to the personalisation vector.

    Each step is a handful of passes in C over flat arrays (``map``, ``accumulate``):
    a node's incoming share is a difference of prefix sums over its in-edges.
    """
    share_of = [DAMPING / w if w else 0.0 for w in g.out_weight]
    dangling_mask = [w == 0 for w in g.out_weight]
    base = [(1.0 - DAMPING) * p for p in pers]
    starts = g.in_start[:-1]
    ends = g.in_start[1:]
    rank = list(pers)
    for _ in range(max_iter):
        share = list(map(mul, rank, share_of))
        flow = array(
            "d",
            accumulate(map(mul, map(share.__getitem__, g.in_src), g.in_weight), initial=0.0),
        )
        spread = DAMPING * sum(compress(rank, dangling_mask))
        new = [
            b + spread * p + (flow[e] - flow[s])
            for b, p, s, e in zip(base, pers, starts, ends, strict=True)
        ]
        delta = sum(map(abs, map(sub, new, rank)))
        rank = new
        if delta < TOLERANCE:
            break
    return rank


def _personalization(size: int, weights: Sequence[float] | None) -> list[float]:
    total = sum(weights) if weights else 0.0
    if weights and total > 0:
        return [w / total for w in weights]
    return [1.0 / size] * size


def pagerank(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, int]],
    personalization: dict[str, float] | None = None,
) -> dict[str, float]:
    """PageRank over named nodes (what the map computes over integer ids)."""
    if not nodes:
        return {}
    index = {n: i for i, n in enumerate(nodes)}
    src = array("i", (index.get(a, -1) for a, _b, _w in edges))
    dst = array("i", (index.get(b, -1) for _a, b, _w in edges))
    weight = array("d", (float(w) for _a, _b, w in edges))
    pers = [personalization.get(n, 0.0) for n in nodes] if personalization else None
    ranks = _iterate(_graph(len(nodes), src, dst, weight), _personalization(len(nodes), pers))
    return dict(zip(nodes, ranks, strict=True))


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


# -- what is kept between calls ------------------------------------------------------


class _State:
    """One repository's map inputs at one index version: O(files), never O(references)."""

    def __init__(self, version: int, files: list[str]) -> None:
        self.version = version
        self.files = files
        self.order: array[int] | None = None
        self.graph: _Graph | None = None
        self.stale: array[int] | None = None
        """The order of the version before, over the same files, while this one's is computed."""
        self.seconds = 0.0
        """How long computing the order took (a slow one is refreshed in the background)."""
        self.refreshing = False
        self.lock = threading.Lock()
        self.refresh_slot = threading.Lock()
        """Shared by a repository's states: one background computation at a time."""


_states: weakref.WeakKeyDictionary[MapSource, _State] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def _state(repo: MapSource, files: list[str]) -> _State:
    version = repo.version
    with _states_lock:
        st = _states.get(repo)
        if st is None or st.version != version or st.files != files:
            new = _State(version, files)
            if st is not None:
                new.refresh_slot = st.refresh_slot
                if st.seconds > REFRESH_AFTER_S and st.files == files:
                    new.stale, new.seconds = st.order or st.stale, st.seconds
            st = _states[repo] = new
        return st


def _load_graph(store: IndexStore, files: list[str]) -> _Graph:
    fg: FileGraph = store.file_graph(MAX_DEFINING_FILES, MAX_OUT_EDGES)
    if fg.paths == files:
        src: Sequence[int] = fg.src
        dst: Sequence[int] = fg.dst
    else:  # the store and the file table disagree (a change in between): map by path
        index = {p: i for i, p in enumerate(files)}
        remap = array("i", (index.get(p, -1) for p in fg.paths))
        src = array("i", (remap[i] for i in fg.src))
        dst = array("i", (remap[i] for i in fg.dst))
    return _graph(len(files), src, dst, array("d", fg.weight))


def _graph_of(st: _State, store: IndexStore, key: Fingerprint | None = None) -> _Graph:
    """The state's graph: in memory, kept in the store under ``key``, or aggregated now."""
    if st.graph is None and key is not None:
        st.graph = _decode_graph(store.meta(GRAPH_KEY), key, len(st.files))
    if st.graph is None:
        t0 = time.perf_counter()
        st.graph = _load_graph(store, st.files)
        if key is not None and time.perf_counter() - t0 > REFRESH_AFTER_S:
            _keep_later(store, {GRAPH_KEY: _encode_graph(key, st.graph)})
    return st.graph


def _le(a: array[int] | array[float]) -> bytes:
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_le(typecode: str, data: bytes) -> array[Any]:
    a: array[Any] = array(typecode, data)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _encode_graph(key: Fingerprint, g: _Graph) -> str:
    blob = b"".join(
        (_le(array("q", g.in_start)), _le(g.in_src), _le(g.in_weight), _le(g.out_weight))
    )
    payload = base64.b64encode(zlib.compress(blob, 1)).decode("ascii")
    return f"{ORDER_FORMAT}|{key[0]}|{key[1]}|{g.size}|{len(g.in_src)}|{payload}"


def _decode_graph(value: str | None, key: Fingerprint, size: int) -> _Graph | None:
    """A kept graph of exactly these paths and contents, else ``None``."""
    parts = (value or "").split("|")
    if len(parts) != 6 or parts[0] != ORDER_FORMAT or (parts[1], parts[2]) != key:
        return None
    try:
        if int(parts[3]) != size:
            return None
        edges = int(parts[4])
        blob = zlib.decompress(base64.b64decode(parts[5], validate=True))
    except (ValueError, zlib.error):
        return None
    cuts = [0, 8 * (size + 1), 4 * edges, 8 * edges, 8 * size]
    ends = list(accumulate(cuts))
    if len(blob) != ends[-1]:
        return None
    in_start = _from_le("q", blob[ends[0] : ends[1]])
    in_src = _from_le("i", blob[ends[1] : ends[2]])
    if in_start[-1] != edges or (edges and (min(in_src) < 0 or max(in_src) >= size)):
        return None
    in_weight = _from_le("d", blob[ends[2] : ends[3]])
    out_weight = _from_le("d", blob[ends[3] : ends[4]])
    return _Graph(size, out_weight, in_start, in_src, in_weight)


def _sorted_order(ranks: Sequence[float]) -> array[int]:
    """Node ids by rank, best first; ties in id order (the files are sorted: by path)."""
    return array("i", sorted(range(len(ranks)), key=ranks.__getitem__, reverse=True))


Fingerprint = tuple[str, str]
"""(the indexed paths, their contents): what a kept order was computed from."""


def _encode(key: Fingerprint, seconds: float, order: array[int]) -> str:
    data = array("i", order)
    if sys.byteorder == "big":
        data.byteswap()
    payload = base64.b64encode(data.tobytes()).decode("ascii")
    return f"{ORDER_FORMAT}|{key[0]}|{key[1]}|{seconds:.3f}|{payload}"


def _decode(value: str | None, key: Fingerprint, size: int) -> tuple[array[int], bool] | None:
    """A kept order over the same paths, and whether it is of the same contents.

    An order of other contents is returned only when it was slow to compute:
    it is shown while the current one is computed in the background.
    """
    parts = (value or "").split("|")
    if len(parts) != 5 or parts[0] != ORDER_FORMAT or parts[1] != key[0]:
        return None
    exact = parts[2] == key[1]
    try:
        if not exact and float(parts[3]) <= REFRESH_AFTER_S:
            return None
        order = array("i", base64.b64decode(parts[4], validate=True))
    except ValueError:
        return None
    if sys.byteorder == "big":
        order.byteswap()
    if len(order) != size or (size and (min(order) < 0 or max(order) >= size)):
        return None
    return order, exact


def _keep(store: IndexStore, values: dict[str, str]) -> None:
    try:
        with store.batch() as b:
            for k, v in values.items():
                b.set_meta(k, v)
    except Exception as exc:  # a read-only or closed store: the map still works
        log.debug("repo map order not kept in %s: %s", store.location, exc)


def _keep_later(store: IndexStore, values: dict[str, str]) -> None:
    """Keep ``values`` for later processes, off the caller's thread (a writer may hold the
    store); not a daemon thread: the interpreter must not stop it inside the database."""
    threading.Thread(target=_keep, args=(store, values), name="rlm-repo-map-keep").start()


def _compute(st: _State, store: IndexStore, key: Fingerprint | None) -> array[int]:
    """The unfocused order of ``st`` (kept in the store under ``key``); with ``st.lock`` held."""
    t0 = time.perf_counter()
    g = _graph_of(st, store, key)
    order = _sorted_order(_iterate(g, _personalization(g.size, None)))
    st.order, st.stale = order, None
    st.seconds = time.perf_counter() - t0
    if key is not None:
        _keep_later(store, {META_KEY: _encode(key, st.seconds, order)})
    return order


def _refresh(st: _State, store: IndexStore, fingerprint: Callable[[], Fingerprint] | None) -> None:
    """Compute the current order while callers are shown the stale one.

    One computation at a time per repository: while one for an older version
    runs, callers keep the stale order and the next call after it starts this one.
    """
    if st.refreshing or not st.refresh_slot.acquire(blocking=False):
        return

    def run() -> None:
        try:
            with st.lock:
                _compute(st, store, fingerprint() if fingerprint is not None else None)
        except Exception as exc:
            log.warning("repo map: computing the order failed: %s", exc)
        finally:
            st.refreshing = False
            st.refresh_slot.release()

    st.refreshing = True
    # Not a daemon: the interpreter must not stop it inside the database.
    threading.Thread(target=run, name="rlm-repo-map-refresh").start()


def _global_order(
    st: _State, store: IndexStore, fingerprint: Callable[[], Fingerprint] | None
) -> array[int]:
    """The unfocused order: computed here, kept from before, or stale while it is refreshed."""
    if st.order is not None:
        return st.order
    if st.stale is not None and (st.refreshing or st.refresh_slot.locked()):
        _refresh(st, store, fingerprint)
        return st.stale
    with st.lock:
        if st.order is not None:
            return st.order
        key = fingerprint() if fingerprint is not None else None
        kept = _decode(store.meta(META_KEY), key, len(st.files)) if key is not None else None
        if kept is not None and kept[1]:
            st.order = kept[0]
            return st.order
        stale = st.stale if st.stale is not None else (kept[0] if kept else None)
        if stale is None:
            return _compute(st, store, key)
        st.stale = stale
    _refresh(st, store, fingerprint)
    return stale


def prepare_repo_map(
    repo: MapSource, store: IndexStore, fingerprint: Callable[[], Fingerprint] | None = None
) -> None:
    """Compute (or find kept) the unfocused order now, e.g. when the symbols pass ends."""
    files = repo.files()
    if files:
        _global_order(_state(repo, sorted(files)), store, fingerprint)


# -- rendering ----------------------------------------------------------------------


def _ranked_defs(
    store: IndexStore, paths: Sequence[str], focus_names: set[str]
) -> dict[str, list[Definition]]:
    """The mappable definitions of ``paths``, each file's best first."""
    per_file = {
        p: store.find_defs(DefQuery("path", text=p, kinds=MAP_KINDS, limit=1_000_000))
        for p in paths
    }
    names = sorted({d.name for defs in per_file.values() for d in defs})
    counts = store.ref_counts(names) if names else {}
    out: dict[str, list[Definition]] = {}
    for p, defs in per_file.items():
        scored: list[tuple[float, Definition]] = []
        for d in defs:
            score = math.log1p(counts.get(d.name, 0)) + (5.0 if d.name in focus_names else 0.0)
            if d.qualname == d.name:
                score += 0.5
            scored.append((score, d))
        scored.sort(key=lambda sd: (-sd[0], sd[1].start_line))
        out[p] = [d for _s, d in scored]
    return out


def render_repo_map(
    repo: MapSource,
    store: IndexStore,
    max_tokens: int = 1024,
    focus: str | Sequence[str] | None = None,
    fingerprint: Callable[[], Fingerprint] | None = None,
) -> str:
    """Render ``path:`` headers with ``kind qualname (line)`` lines, best first.

    ``fingerprint`` names the indexed content (files and their states); with
    it, the unfocused order is kept in the store and reused by later processes.
    """
    files = repo.files()
    if not files or max_tokens <= 0:
        return ""
    if any(a > b for a, b in pairwise(files)):
        files = sorted(files)
    focus_list = [focus] if isinstance(focus, str) else list(focus or [])
    st = _state(repo, files)
    pers = _focus_weights(repo, files, focus_list) if focus_list else None
    if pers and sum(pers.values()) > 0:
        with st.lock:
            g = _graph_of(st, store, fingerprint() if fingerprint and st.graph is None else None)
        weights = [pers.get(p, 0.0) for p in files]
        steps = max(FOCUS_MIN_ITER, min(MAX_ITER, FOCUS_WORK // max(1, len(g.in_src))))
        order = _sorted_order(_iterate(g, _personalization(g.size, weights), steps))
    else:
        order = _global_order(st, store, fingerprint)
    focus_names = {f.rsplit(".", 1)[-1] for f in focus_list}
    budget = max_tokens * 4
    used = 0
    out: list[str] = []
    pos = 0
    while pos < len(order) and used < budget:
        chunk = [files[i] for i in order[pos : pos + DEFS_BATCH]]
        pos += DEFS_BATCH
        ranked = _ranked_defs(store, chunk, focus_names)
        for path in chunk:
            header = f"{path}:"
            if used + len(header) + 1 > budget:
                return "\n".join(out)
            out.append(header)
            used += len(header) + 1
            shown: list[Definition] = []
            for d in ranked[path]:
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
                return "\n".join(out)
    return "\n".join(out)
