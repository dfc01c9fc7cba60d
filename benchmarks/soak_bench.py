"""Soak test of ``rlm-mcp serve --transport http``: many clients, file churn, then a check.

Run: ``.venv/bin/python benchmarks/soak_bench.py [--seconds 120] [--clients 8]``.

Everything stays on the loopback interface and in one temporary directory:

* a scripted OpenAI-compatible model (:class:`LoopbackLLMServer`, in this process) whose
  root turns run a code block calling ``repo.grep``, ``repo.search`` and ``llm_query``, then
  ``FINAL``; sub-calls answer in a line;
* a corpus copied from this interpreter's standard library (a few MB of Python);
* the server as a subprocess in its own session, caches and state under the temp dir.

N MCP clients (the SDK's Streamable HTTP client) call a mix of tools until the time is up,
while a churn thread creates, edits, renames and deletes files at a bounded rate. Every
second the server's RSS, open descriptors, threads and process tree are sampled; the
first and last windows are compared to show whether they stay flat.

At the end churn stops, the server's index version is awaited until it stops changing, and
the live index is compared with a cold load of the same tree (file list, grep hits, symbol
counts). The server then gets SIGTERM, and /proc is scanned for processes it left behind.

stdout is one JSON object with every figure; a short summary goes to stderr. Exit status:
0 when no check failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import anyio.to_thread
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.testing import LoopbackLLMServer, Reply

STDLIB_PACKAGES = (
    "email",
    "json",
    "http",
    "asyncio",
    "xml",
    "concurrent",
    "importlib",
    "unittest",
    "multiprocessing",
    "logging",
)
ROOT_MODEL, SUB_MODEL = "root-model", "sub-model"
QUERY_LIMITS = {"max_llm_calls": 6, "max_iterations": 3, "max_wall_seconds": 30}
CALL_TIMEOUT_S = 90.0
COMPARE_PATTERNS = (
    r"def churn_fn_\d+",
    r"soak_marker_\d+",
    r"class \w+Error\b",
    r"^import ",
    r"async def \w+",
)

ROOT_TURN = """Let me look.
```python
hits = repo.grep(r"def \\w+", glob="json/**", max_results=5)
found = repo.search("decode a json document", limit=3)
note = llm_query("Say what these do:\\n" + "\\n".join(hits[:3]))
print(len(hits), len(found), note[:60])
```
"""
ROOT_FINAL = '```python\nFINAL("json/decoder.py:1 holds the decoder")\n```\n'


# -- the scripted model ----------------------------------------------------------------------


def responder(body: dict[str, Any]) -> str | Reply:
    """Root turns: one exploring block, then FINAL; sub-calls: one short line."""
    if body.get("model") == SUB_MODEL:
        return "It decodes JSON text into Python objects."
    turns = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant")
    return ROOT_TURN if turns == 0 else ROOT_FINAL


# -- /proc -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: int
    comm: str


def proc_info(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    lpar, rpar = raw.index("("), raw.rindex(")")
    rest = raw[rpar + 2 :].split()
    return ProcInfo(
        pid=pid,
        ppid=int(rest[1]),
        pgid=int(rest[2]),
        sid=int(rest[3]),
        state=rest[0],
        start=int(rest[19]),
        comm=raw[lpar + 1 : rpar],
    )


def all_procs() -> dict[int, ProcInfo]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := proc_info(int(name))) is not None:
            found[info.pid] = info
    return found


def descendants(root: int, procs: dict[int, ProcInfo]) -> list[ProcInfo]:
    children: dict[int, list[int]] = defaultdict(list)
    for p in procs.values():
        children[p.ppid].append(p.pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(procs[pid])
        todo.extend(children.get(pid, []))
    return out


def status_fields(pid: int) -> dict[str, int]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


class Sampler(threading.Thread):
    """Samples the server process and its tree once a second."""

    def __init__(self, pid: int, t0: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pid, self.t0 = pid, t0
        self.samples: list[dict[str, float]] = []
        self.seen: dict[tuple[int, int], str] = {}
        self.stray_in_session = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(1.0)

    def sample(self) -> None:
        st = status_fields(self.pid)
        if not st:
            return
        procs = all_procs()
        tree = descendants(self.pid, procs)
        tree_pids = {p.pid for p in tree}
        for p in tree:
            key = (p.pid, p.start)
            if key not in self.seen:
                self.seen[key] = cmdline(p.pid)[:160] or p.comm
        stray = [
            p
            for p in procs.values()
            if p.sid == self.pid and p.pid != self.pid and p.pid not in tree_pids
        ]
        self.stray_in_session = max(self.stray_in_session, len(stray))
        tree_rss = sum(status_fields(p.pid).get("VmRSS", 0) for p in tree)
        self.samples.append(
            {
                "t": round(time.monotonic() - self.t0, 2),
                "rss_mb": st.get("VmRSS", 0) / 1024,
                "threads": st.get("Threads", 0),
                "fds": fd_count(self.pid),
                "children": sum(1 for p in tree if p.ppid == self.pid),
                "descendants": len(tree),
                "zombies": sum(1 for p in tree if p.state == "Z"),
                "tree_rss_mb": tree_rss / 1024,
            }
        )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# -- the corpus and its churn ------------------------------------------------------------------


def build_corpus(root: Path) -> list[str]:
    """Copy stdlib packages under ``root``; returns the .py files churn may append to."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for pkg in STDLIB_PACKAGES:
        shutil.copytree(stdlib / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "churn").mkdir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))


def churn_module(n: int, rev: int) -> str:
    body = [f'"""Churn module {n}, revision {rev}."""\n']
    for k in range(rev % 4 + 1):
        body.append(f"\n\ndef churn_fn_{n}_{k}(x):\n    return x + {rev}\n")
    body.append(f"\n\nclass ChurnClass{n}:\n    def method_{rev}(self):\n        return {n}\n")
    return "".join(body)


class Churn(threading.Thread):
    """Creates, rewrites, renames and deletes files at about ``rate`` operations a second."""

    MAX_FILES = 40

    def __init__(self, root: Path, stable: list[str], rate: float, seed: int) -> None:
        super().__init__(name="soak-churn", daemon=True)
        self.root, self.rate = root, rate
        self.rng = random.Random(seed)
        self.appendable = stable
        self.originals: dict[str, str] = {}
        self.files: list[str] = []
        self.dirs: list[str] = []
        self.counter = 0
        self.ops: Counter[str] = Counter()
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        ops: list[tuple[Callable[[], None], int]] = [
            (self.create, 5),
            (self.rewrite, 5),
            (self.replace_atomically, 3),
            (self.rename, 2),
            (self.delete, 4),
            (self.append_marker, 3),
            (self.restore_original, 2),
            (self.create_dir, 1),
            (self.delete_dir, 1),
        ]
        funcs, weights = zip(*ops, strict=True)
        while not self._halt.wait(1.0 / self.rate):
            op = self.rng.choices(funcs, weights)[0]
            if len(self.files) >= self.MAX_FILES and op in (self.create, self.create_dir):
                op = self.delete
            try:
                op()
                self.ops[op.__name__] += 1
            except OSError as exc:
                self.errors.append(f"{op.__name__}: {exc}")

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def create(self) -> None:
        n = self._next()
        rel = f"churn/mod_{n}.py"
        (self.root / rel).write_text(churn_module(n, 0))
        self.files.append(rel)

    def rewrite(self) -> None:
        if self.files:
            rel = self.rng.choice(self.files)
            (self.root / rel).write_text(churn_module(self._next(), self.rng.randrange(8)))

    def replace_atomically(self) -> None:
        """An editor-style save: write a temporary file, then rename it over the target."""
        if self.files:
            rel = self.rng.choice(self.files)
            tmp = self.root / f"{rel}.swp-{self._next()}"
            tmp.write_text(churn_module(self.counter, self.rng.randrange(8)))
            os.replace(tmp, self.root / rel)

    def rename(self) -> None:
        if self.files:
            rel = self.files.pop(self.rng.randrange(len(self.files)))
            new = f"{Path(rel).parent}/renamed_{self._next()}.py"
            os.replace(self.root / rel, self.root / new)
            self.files.append(new)

    def delete(self) -> None:
        if self.files:
            rel = self.files.pop(self.rng.randrange(len(self.files)))
            (self.root / rel).unlink()

    def append_marker(self) -> None:
        rel = self.rng.choice(self.appendable)
        path = self.root / rel
        text = path.read_text()
        self.originals.setdefault(rel, text)
        n = self._next()
        path.write_text(text + f"\n\ndef soak_marker_{n}():\n    return {n}\n")

    def restore_original(self) -> None:
        if self.originals:
            rel = self.rng.choice(sorted(self.originals))
            (self.root / rel).write_text(self.originals.pop(rel))

    def create_dir(self) -> None:
        n = self._next()
        rel = f"churn/pkg_{n}"
        (self.root / rel).mkdir()
        for k in range(3):
            (self.root / rel / f"part_{k}.py").write_text(churn_module(n * 10 + k, k))
        self.dirs.append(rel)

    def delete_dir(self) -> None:
        if self.dirs:
            rel = self.dirs.pop(self.rng.randrange(len(self.dirs)))
            shutil.rmtree(self.root / rel)


# -- clients ---------------------------------------------------------------------------------


SEARCH_PATTERNS = (
    r"def \w+_header",
    r"class \w+Error",
    r"import (json|email)",
    r"async def \w+",
    r"TODO|XXX",
    r"soak_marker_\d+",
    r"def churn_fn_\d+",
)
FIND_QUERIES = (
    "parse an email header",
    "json decoder",
    "event loop policy",
    "http cookie jar",
    "where are subprocess transports closed?",
    "ChurnClass method",
)
SYMBOL_QUERIES = (
    ("Message", "auto"),
    ("loads", "exact"),
    ("get_event_loop", "auto"),
    ("HTTPConnection", "auto"),
    ("churn_fn_", "prefix"),
    ("Header", "substring"),
)
QUESTIONS = ("How is JSON decoded?", "Where is the event loop created?", "What parses headers?")
EXEC_CODE = (
    'n = len(repo.grep(r"def __init__", max_results=50))\n'
    'print(n, len(repo.files("**/*.py")), len(repo.symbols("Message")))\n'
)
MIX = (
    ("rlm_load", 1),
    ("rlm_search", 4),
    ("rlm_find", 4),
    ("rlm_symbols", 4),
    ("rlm_read", 4),
    ("rlm_exec", 2),
    ("rlm_query", 2),
    ("rlm_repos", 1),
)


def pick_call(rng: random.Random, corpus: Path, readable: list[str]) -> tuple[str, dict[str, Any]]:
    tool = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
    if tool == "rlm_load":
        return tool, {"path": str(corpus)}
    if tool == "rlm_search":
        return tool, {"pattern": rng.choice(SEARCH_PATTERNS), "max_results": 200}
    if tool == "rlm_find":
        return tool, {"query": rng.choice(FIND_QUERIES), "limit": 10}
    if tool == "rlm_symbols":
        query, match = rng.choice(SYMBOL_QUERIES)
        return tool, {"query": query, "match": match, "limit": 100}
    if tool == "rlm_read":
        start = rng.randrange(1, 40)
        return tool, {"path": rng.choice(readable), "start": start, "end": start + 40}
    if tool == "rlm_exec":
        return tool, {"code": EXEC_CODE}
    if tool == "rlm_query":
        return tool, {"question": rng.choice(QUESTIONS), "limits": QUERY_LIMITS}
    return tool, {}


@dataclass
class Calls:
    """Every call's tool, start time, duration and outcome."""

    rows: list[tuple[str, float, float, str | None]] = field(default_factory=list)
    query_status: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    max_pending: int = 0
    watch_modes: Counter[str] = field(default_factory=Counter)
    watcher_errors: Counter[str] = field(default_factory=Counter)

    def add(self, tool: str, t: float, seconds: float, error: str | None) -> None:
        self.rows.append((tool, t, seconds, error))

    def note_watcher(self, repo: dict[str, Any]) -> None:
        """What rlm_repos said about the watcher: pending changes, mode, errors."""
        self.max_pending = max(self.max_pending, int(repo.get("pending_changes") or 0))
        self.watch_modes[str(repo.get("watch_mode"))] += 1
        if repo.get("last_error"):
            self.watcher_errors[str(repo["last_error"])[:200]] += 1


def error_text(result: Any) -> str:
    parts = [getattr(c, "text", "") for c in result.content or []]
    return " ".join(p for p in parts if p)[:300] or "tool error without text"


async def client_loop(
    idx: int,
    url: str,
    corpus: Path,
    readable: list[str],
    t0: float,
    deadline: float,
    calls: Calls,
    seed: int,
) -> None:
    rng = random.Random(seed * 1000 + idx)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=CALL_TIMEOUT_S + 30)) as http:
        while time.monotonic() < deadline:
            try:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    while time.monotonic() < deadline:
                        tool, args = pick_call(rng, corpus, readable)
                        started = time.monotonic()
                        error: str | None = None
                        try:
                            with anyio.fail_after(CALL_TIMEOUT_S):
                                result = await client.call_tool(tool, args)
                        except TimeoutError:
                            error = f"timeout after {CALL_TIMEOUT_S:g}s"
                        else:
                            if result.is_error:
                                error = error_text(result)
                            elif tool == "rlm_query":
                                sc = result.structured_content or {}
                                calls.query_status[f"{sc.get('status')}:{sc.get('limit')}"] += 1
                            elif tool == "rlm_repos":
                                for r in (result.structured_content or {}).get("repositories", []):
                                    calls.note_watcher(r)
                            elif tool == "rlm_exec":
                                sc = result.structured_content or {}
                                if sc.get("error") or sc.get("timed_out"):
                                    error = (
                                        f"exec: {sc.get('error')} timed_out={sc.get('timed_out')}"
                                    )
                        calls.add(tool, started - t0, time.monotonic() - started, error)
            except Exception as exc:
                calls.reconnects += 1
                calls.add(
                    "session", time.monotonic() - t0, 0.0, f"{type(exc).__name__}: {exc}"[:300]
                )
                await anyio.sleep(0.5)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_table(
    calls: Calls, first: tuple[float, float], last: tuple[float, float]
) -> dict[str, Any]:
    by_tool: dict[str, list[tuple[float, float, str | None]]] = defaultdict(list)
    for tool, t, seconds, error in calls.rows:
        by_tool[tool].append((t, seconds, error))
    table = {}
    for tool, rows in sorted(by_tool.items()):
        ok = [s for _, s, e in rows if e is None]
        errors = Counter(e for _, _, e in rows if e is not None)

        def p50_in(window: tuple[float, float], rows: list[Any] = rows) -> float | None:
            xs = [s for t, s, e in rows if e is None and window[0] <= t < window[1]]
            return round(statistics.median(xs) * 1000, 1) if xs else None

        table[tool] = {
            "calls": len(rows),
            "errors": sum(errors.values()),
            "p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
            "p95_ms": round(percentile(ok, 0.95) * 1000, 1) if ok else None,
            "max_ms": round(max(ok) * 1000, 1) if ok else None,
            "p50_ms_first_window": p50_in(first),
            "p50_ms_last_window": p50_in(last),
            "error_samples": [f"{n}x {e}" for e, n in errors.most_common(5)],
        }
    return table


def slope_per_min(samples: list[dict[str, float]], key: str, window: tuple[float, float]) -> float:
    """Least-squares slope of ``key`` over the window, in units a minute."""
    rows = [(s["t"], s[key]) for s in samples if window[0] <= s["t"] < window[1]]
    if len(rows) < 3:
        return 0.0
    mt = statistics.fmean(t for t, _ in rows)
    mv = statistics.fmean(v for _, v in rows)
    den = sum((t - mt) ** 2 for t, _ in rows)
    return round(60 * sum((t - mt) * (v - mv) for t, v in rows) / den, 3) if den else 0.0


def window_means(samples: list[dict[str, float]], window: tuple[float, float]) -> dict[str, float]:
    rows = [s for s in samples if window[0] <= s["t"] < window[1]]
    if not rows:
        return {}
    keys = [k for k in rows[0] if k != "t"]
    return {k: round(statistics.fmean(r[k] for r in rows), 2) for k in keys} | {"n": len(rows)}


# -- the end check ---------------------------------------------------------------------------


def structured(result: Any) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(error_text(result))
    return dict(result.structured_content or {})


async def wait_settled(client: Client, settle_s: float, deadline_s: float) -> dict[str, Any]:
    """Poll rlm_repos until nothing is pending and the version has not moved for ``settle_s``."""
    start = time.monotonic()
    version, since, polls = None, start, 0
    while time.monotonic() - start < deadline_s:
        repos = structured(await client.call_tool("rlm_repos", {}))
        polls += 1
        live = repos["repositories"][0]
        current = live["index_version"]
        if current != version:
            version, since = current, time.monotonic()
        elif time.monotonic() - since >= settle_s and not live.get("pending_changes"):
            return {
                "settled": True,
                "seconds": round(since - start, 2),
                "version": version,
                "polls": polls,
                "watch_mode": live.get("watch_mode"),
                "last_error": live.get("last_error"),
            }
        await anyio.sleep(0.25)
    return {"settled": False, "seconds": round(time.monotonic() - start, 2), "version": version}


def spawn_children(pid: int) -> list[int]:
    """The server's multiprocessing ``spawn`` children (the grep helper among them)."""
    procs = all_procs()
    return sorted(p.pid for p in descendants(pid, procs) if "spawn_main" in cmdline(p.pid))


async def idle_probe(
    client: Client, corpus: Path, server_pid: int, idle_s: float, cycles: int
) -> dict[str, Any]:
    """Bursts, then idle pauses past anyio's worker-thread idle limit (10 s), then greps.

    A burst of concurrent calls leaves the server with many worker threads; after the
    pause the next call prunes those idle too long. Anything a pruned thread owns (a
    process spawned from it with PR_SET_PDEATHSIG, say) goes with it. No grep here can
    time out, so a spawn child that is replaced was killed for no reason of its own.

    It runs after the consistency check: it unloads and reloads the repository so that
    the grep helper starts afresh, from a worker thread serving an ``rlm_search``.
    """
    name = structured(await client.call_tool("rlm_repos", {}))["repositories"][0]["name"]
    structured(await client.call_tool("rlm_unload", {"name": name}))
    structured(await client.call_tool("rlm_load", {"path": str(corpus)}))
    structured(await client.call_tool("rlm_search", {"pattern": "def ", "max_results": 1}))
    rounds = []
    for _ in range(cycles):
        async with anyio.create_task_group() as tg:
            for pattern in SEARCH_PATTERNS * 2:
                tg.start_soon(client.call_tool, "rlm_search", {"pattern": pattern})
        before = spawn_children(server_pid)
        await anyio.sleep(idle_s)
        errors = []
        for pattern in SEARCH_PATTERNS[:3]:
            result = await client.call_tool("rlm_search", {"pattern": pattern, "max_results": 50})
            if result.is_error:
                errors.append(error_text(result))
            await anyio.sleep(0.2)
        after = spawn_children(server_pid)
        rounds.append(
            {"before": before, "after": after, "replaced": sorted(set(before) - set(after))}
            | {"errors": errors}
        )
    return {
        "idle_s": idle_s,
        "cycles": rounds,
        "replaced": sum(len(r["replaced"]) for r in rounds),
        "errors": [e for r in rounds for e in r["errors"]],
    }


async def live_files(client: Client) -> list[str]:
    code = "_soak_files = sorted(repo.files())\nprint(len(_soak_files))\n"
    out = structured(await client.call_tool("rlm_exec", {"code": code}))
    total = int(out["stdout"].strip())
    files: list[str] = []
    page = 250
    for i in range(0, total, page):
        code = f'print("\\n".join(_soak_files[{i}:{i + page}]))\n'
        out = structured(await client.call_tool("rlm_exec", {"code": code}))
        if out["truncated"]:
            raise RuntimeError("rlm_exec truncated a page of the file list")
        files.extend(line for line in out["stdout"].splitlines() if line)
    return files


def diff(live: list[str], fresh: list[str]) -> dict[str, Any]:
    a, b = set(live), set(fresh)
    return {
        "live": len(live),
        "fresh": len(fresh),
        "equal": sorted(live) == sorted(fresh),
        "only_live": sorted(a - b)[:5],
        "only_fresh": sorted(b - a)[:5],
    }


async def call_retrying(
    client: Client, tool: str, args: dict[str, Any], failures: list[str]
) -> dict[str, Any]:
    """One call of the end check; a failure is recorded and the call retried once."""
    try:
        return structured(await client.call_tool(tool, args))
    except RuntimeError as exc:
        failures.append(f"{tool}({json.dumps(args)[:80]}): {exc}"[:300])
        return structured(await client.call_tool(tool, args))


async def compare(client: Client, fresh: Repository) -> dict[str, Any]:
    failures: list[str] = []
    repos = (await call_retrying(client, "rlm_repos", {}, failures))["repositories"][0]
    out: dict[str, Any] = {
        "call_failures": failures,
        "index_version": repos["index_version"],
        "files": diff(await live_files(client), sorted(fresh.files())),
        "counts": {
            key: {"live": repos[key], "fresh": getattr(fresh.report, key)}
            for key in ("files", "symbols", "tokens")
        },
        "grep": {},
    }
    for pattern in COMPARE_PATTERNS:
        args = {"pattern": pattern, "max_results": 10_000}
        got = (await call_retrying(client, "rlm_search", args, failures))["hits"]
        want = [str(h) for h in fresh.grep(pattern, None, 10_001, False)]
        out["grep"][pattern] = diff(got, want)
    args = {"query": "churn_fn_", "match": "prefix", "limit": 5000}
    got_syms = (await call_retrying(client, "rlm_symbols", args, failures))["symbols"]
    want_syms = fresh.symbols("churn_fn_", None, None, "prefix", 5000)
    out["churn_symbols"] = diff(
        [f"{s['path']}:{s['line']}:{s['qualname']}" for s in got_syms],
        [f"{d.path}:{d.start_line}:{d.qualname}" for d in want_syms],
    )
    out["equal"] = (
        out["files"]["equal"]
        and all(c["live"] == c["fresh"] for c in out["counts"].values())
        and all(g["equal"] for g in out["grep"].values())
        and out["churn_symbols"]["equal"]
    )
    return out


# -- stopping and the orphan scan ------------------------------------------------------------


def stop_server(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
        return {"exited": True, "rc": rc, "seconds": round(time.monotonic() - t, 2)}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return {"exited": False, "rc": None, "seconds": timeout, "killed_group": True}


def scan_leftovers(
    server_pid: int, tmp: Path, seen: dict[tuple[int, int], str]
) -> list[dict[str, Any]]:
    """Processes still alive that the server started (its tree, session, group, or temp dir)."""
    own = {os.getpid()}
    deadline = time.monotonic() + 5.0
    while True:
        procs = all_procs()
        own |= {p.pid for p in descendants(os.getpid(), procs)}
        left = []
        for p in procs.values():
            if p.pid in own:
                continue
            line = cmdline(p.pid)
            reasons = []
            if (p.pid, p.start) in seen:
                reasons.append("was in the server's tree")
            if server_pid in (p.sid, p.pgid):
                reasons.append("in the server's session/group")
            if str(tmp) in line:
                reasons.append("cmdline names the temp dir")
            if reasons:
                left.append(
                    {
                        "pid": p.pid,
                        "state": p.state,
                        "comm": p.comm,
                        "cmdline": line[:200],
                        "why": reasons,
                    }
                )
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kind_of(line: str) -> str:
    """A short name for a process the server started, from its command line."""
    if "bwrap" in line.split(" ")[0]:
        return "bwrap"
    for marker, kind in (
        ("sandbox/_worker.py", "sandbox worker"),
        ("resource_tracker", "multiprocessing resource tracker"),
        ("spawn_main", "multiprocessing spawn child (grep helper, parsers)"),
        ("grepworker", "grep helper"),
    ):
        if marker in line:
            return kind
    return line[:80]


def log_findings(path: Path) -> dict[str, Any]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    bad = [ln for ln in lines if "ERROR" in ln or "Traceback" in ln or "CRITICAL" in ln]
    return {
        "lines": len(lines),
        "warnings": sum("WARNING" in ln for ln in lines),
        "shutdown_complete": any("application shutdown complete" in ln.lower() for ln in lines),
        "errors": len(bad),
        "error_samples": list(dict.fromkeys(ln[:240] for ln in bad))[:8],
        "warning_samples": list(dict.fromkeys(ln[:240] for ln in lines if "WARNING" in ln))[:5],
    }


def dir_size(path: Path) -> dict[str, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {deadline_s}s")


# -- main ------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    corpus = tmp / "corpus"
    corpus.mkdir()
    stable = build_corpus(corpus)
    report: dict[str, Any] = {
        "config": {
            "seconds": args.seconds,
            "clients": args.clients,
            "churn_rate": args.churn_rate,
            "seed": args.seed,
            "corpus": {"packages": list(STDLIB_PACKAGES), **dir_size(corpus)},
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        }
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    stderr_path = tmp / "server-stderr.log"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_"))}
    llm = LoopbackLLMServer(responder=responder, latency=args.llm_latency)
    llm.start()
    try:
        env = base_env | {
            "RLM_BASE_URL": llm.base_url,
            "RLM_MODEL": ROOT_MODEL,
            "RLM_SUB_MODEL": SUB_MODEL,
            "RLM_API_KEY": "loopback",
            "RLM_ALLOWED_ROOTS": str(tmp),
            "RLM_CACHE_DIR": str(tmp / "cache"),
            "RLM_TRAJECTORY_DIR": str(tmp / "trajectories"),
            "RLM_LOG_LEVEL": "INFO",
            "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
            "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
            "XDG_STATE_HOME": str(tmp / "xdg-state"),
            "XDG_DATA_HOME": str(tmp / "xdg-data"),
            "PYTHONUNBUFFERED": "1",
        }
        with stderr_path.open("w") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rlm_mcp",
                    "serve",
                    "--transport",
                    "http",
                    "--port",
                    str(port),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                cwd=tmp,
            )
        t0 = time.monotonic()
        sampler = Sampler(proc.pid, t0)
        sampler.start()
        try:
            wait_for_port(port, proc)
            report["startup_s"] = round(time.monotonic() - t0, 2)
            try:
                await run_phases(args, report, url, corpus, stable, tmp, sampler, t0)
            except Exception as exc:
                report["fatal"] = "".join(traceback.format_exception(exc))[-3000:]
        finally:
            sampler.stop()
            if proc.poll() is None:
                report["shutdown"] = stop_server(proc, args.stop_timeout)
            else:
                report["shutdown"] = {"exited": True, "rc": proc.returncode, "early": True}
            leftovers = scan_leftovers(proc.pid, tmp, sampler.seen)
            report["orphans"] = leftovers
            for p in leftovers:
                try:
                    os.kill(p["pid"], signal.SIGKILL)
                except OSError:
                    pass
            report["process_tree_seen"] = dict(Counter(map(kind_of, sampler.seen.values())))
            report["process_tree_distinct_pids"] = len(sampler.seen)
            report["stray_in_session_while_running_max"] = sampler.stray_in_session
    finally:
        llm.stop()
    report["llm"] = {
        "requests": len(llm.requests),
        "max_concurrent": llm.max_concurrent,
        "client_disconnects": llm.client_disconnects,
        "responder_errors": llm.errors[:5],
    }
    report["server_log"] = log_findings(stderr_path)
    report["trajectories"] = dir_size(tmp / "trajectories")
    report["cache"] = dir_size(tmp / "cache")
    return report


async def run_phases(
    args: argparse.Namespace,
    report: dict[str, Any],
    url: str,
    corpus: Path,
    stable: list[str],
    tmp: Path,
    sampler: Sampler,
    t0: float,
) -> None:
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(url, http_client=http)) as admin,
    ):
        t = time.monotonic()
        loaded = structured(await admin.call_tool("rlm_load", {"path": str(corpus)}))
        report["initial_load"] = {
            "seconds": round(time.monotonic() - t, 2),
            **{k: loaded[k] for k in ("files", "symbols", "tokens", "parsed", "watching")},
        }
        churn = Churn(corpus, stable, args.churn_rate, args.seed)
        calls = Calls()
        start = time.monotonic()
        deadline = start + args.seconds
        churn.start()
        try:
            async with anyio.create_task_group() as tg:
                for i in range(args.clients):
                    tg.start_soon(
                        client_loop, i, url, corpus, stable, t0, deadline, calls, args.seed
                    )
        finally:
            churn.stop()
        end = time.monotonic()
        report["churn"] = {
            "ops": dict(churn.ops),
            "total": churn.ops.total(),
            "errors": churn.errors[:5],
        }
        span = (start - t0, end - t0)
        w = min(60.0, (span[1] - span[0]) / 3)
        first, last = (span[0], span[0] + w), (span[1] - w, span[1] + 0.01)
        report["run"] = {
            "load_phase_s": round(end - start, 1),
            "drain_s": round(end - deadline, 1),
            "calls": len(calls.rows),
            "calls_per_s": round(len(calls.rows) / max(end - start, 1e-9), 1),
            "errors": sum(1 for r in calls.rows if r[3] is not None),
            "reconnects": calls.reconnects,
            "window_s": round(w, 1),
        }
        report["latency"] = latency_table(calls, first, last)
        report["query_status"] = dict(calls.query_status)
        report["watcher_seen_by_rlm_repos"] = {
            "max_pending_changes": calls.max_pending,
            "modes": dict(calls.watch_modes),
            "errors": dict(calls.watcher_errors.most_common(5)),
        }
        report["resources"] = {
            "first_window": window_means(sampler.samples, first),
            "last_window": window_means(sampler.samples, last),
            "max": {
                k: max(s[k] for s in sampler.samples)
                for k in ("rss_mb", "fds", "threads", "descendants", "tree_rss_mb")
            },
            "slope_per_min_last_window": {
                k: slope_per_min(sampler.samples, k, last) for k in ("rss_mb", "fds", "threads")
            },
            "timeline_every_10s": [s for i, s in enumerate(sampler.samples) if i % 10 == 0],
        }
        report["settle"] = await wait_settled(admin, args.settle, args.settle_deadline)
        fresh_cache = Path(tempfile.mkdtemp(prefix="fresh-cache-", dir=tmp))
        t = time.monotonic()
        fresh = await anyio.to_thread.run_sync(
            lambda: load(corpus, IndexSettings(cache_dir=fresh_cache, watch=False))
        )
        report["cold_load_s"] = round(time.monotonic() - t, 2)
        try:
            report["consistency"] = await compare(admin, fresh)
            if not report["consistency"]["equal"]:
                structured(await admin.call_tool("rlm_load", {"path": str(corpus)}))
                after = await compare(admin, fresh)
                report["consistency_after_reload"] = {"equal": after["equal"], "detail": after}
        finally:
            fresh.close()
        if args.idle_probe > 0:
            report["idle_probe"] = await idle_probe(
                admin, corpus, sampler.pid, args.idle_probe, args.idle_cycles
            )


def summary(report: dict[str, Any]) -> tuple[str, list[str]]:
    problems = []
    if report.get("fatal"):
        problems.append("the soak stopped early: " + report["fatal"].splitlines()[-1])
    run = report.get("run", {})
    if run.get("errors"):
        problems.append(f"{run['errors']} failed calls")
    if run.get("reconnects"):
        problems.append(f"{run['reconnects']} client sessions lost")
    if not report.get("settle", {}).get("settled", False):
        problems.append("the index version never settled")
    probe = report.get("idle_probe", {})
    if probe.get("errors"):
        problems.append(f"{len(probe['errors'])} greps failed after an idle pause")
    if report.get("watcher_seen_by_rlm_repos", {}).get("errors"):
        problems.append("rlm_repos reported watcher errors")
    if probe.get("replaced"):
        problems.append(f"the grep helper was killed {probe['replaced']}x by idle pauses alone")
    if report.get("consistency", {}).get("call_failures"):
        n = len(report["consistency"]["call_failures"])
        problems.append(f"{n} calls of the end check failed (then retried)")
    if not report.get("consistency", {}).get("equal", False):
        problems.append("the live index differs from a cold load")
    if report.get("orphans"):
        problems.append(f"{len(report['orphans'])} processes left after shutdown")
    shutdown = report.get("shutdown", {})
    if not shutdown.get("exited") or shutdown.get("early"):
        problems.append(f"shutdown: {shutdown}")
    elif not report.get("server_log", {}).get("shutdown_complete"):
        problems.append("the server log has no 'Application shutdown complete'")
    if report.get("server_log", {}).get("errors"):
        problems.append(f"{report['server_log']['errors']} ERROR/Traceback lines in the server log")
    res = report.get("resources", {})
    lines = [
        f"soak: {run.get('calls', 0)} calls in {run.get('load_phase_s', 0)} s "
        f"({run.get('calls_per_s', 0)}/s), {report.get('churn', {}).get('total', 0)} churn ops",
    ]
    for tool, row in report.get("latency", {}).items():
        lines.append(
            f"  {tool:<12} n={row['calls']:<5} err={row['errors']:<3} "
            f"p50={row['p50_ms']} ms p95={row['p95_ms']} ms"
        )
    first, last = res.get("first_window", {}), res.get("last_window", {})
    for key in ("rss_mb", "fds", "threads", "descendants", "tree_rss_mb"):
        lines.append(f"  {key:<12} first={first.get(key)} last={last.get(key)}")
    settle, cons = report.get("settle", {}), report.get("consistency", {})
    lines.append(
        f"  settled={settle.get('settled')} after {settle.get('seconds')} s at version "
        f"{settle.get('version')}; live index == cold load: {cons.get('equal')}; "
        f"SIGTERM exit in {shutdown.get('seconds')} s; orphans: {len(report.get('orphans', []))}"
    )
    if probe:
        lines.append(
            f"  idle probe ({len(probe['cycles'])} x (burst, {probe['idle_s']} s idle, 3 greps)): "
            f"helpers replaced {probe['replaced']}x, errors: {probe['errors'] or 'none'}"
        )
    slope = res.get("slope_per_min_last_window", {})
    lines.append(f"  last-window slope per minute: {slope}")
    lines.append("problems: " + ("; ".join(problems) if problems else "none"))
    return "\n".join(lines), problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="load phase [default: 120]")
    parser.add_argument(
        "--clients", type=int, default=8, help="concurrent MCP clients [default: 8]"
    )
    parser.add_argument("--churn-rate", type=float, default=4.0, help="file operations a second")
    parser.add_argument("--llm-latency", type=float, default=0.02, help="seconds per model reply")
    parser.add_argument("--settle", type=float, default=3.0, help="quiet seconds = settled")
    parser.add_argument("--settle-deadline", type=float, default=60.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0, help="SIGTERM grace")
    parser.add_argument(
        "--idle-probe",
        type=float,
        default=11.0,
        help="seconds idle after the load phase before a few greps; 0 skips [default: 11]",
    )
    parser.add_argument("--idle-cycles", type=int, default=2, help="idle probe rounds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (its path is printed)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlm-soak-")).resolve()
    try:
        report = anyio.run(soak, args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text, problems = summary(report)
    report["problems"] = problems
    print(json.dumps(report, indent=2, default=str))
    print(text, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
