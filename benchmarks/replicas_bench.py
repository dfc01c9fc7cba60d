"""Replicas on one PostgreSQL index against one SQLite-backed server, under the same load.

Run: ``.venv/bin/python benchmarks/replicas_bench.py [--seconds 60] [--clients 50]
[--replicas 3] [--index-url postgresql://...]``

Two set-ups serve the same corpus (stdlib packages copied to a temporary
directory) to the same client load:

* **postgres**: one writer (``serve --transport http --index-url URL``, watching
  the corpus) and N read replicas (the same, ``--no-watch``), each with a bearer
  token; the clients are spread round-robin over the replicas, as a load
  balancer would. Each replica's ``rlm_load`` must reuse the writer's index
  (``parsed == 0``).
* **sqlite**: one server with its SQLite cache and watcher; every client on it.

In both, ``--clients`` MCP clients (Streamable HTTP) call a mix of ``rlm_find``,
``rlm_search``, ``rlm_symbols``, ``rlm_read`` and ``rlm_exec`` for ``--seconds``
while an editor thread rewrites files at ``--edit-rate`` per second (applied by
the writer's watcher). Without ``--index-url`` a throwaway cluster is started
(``initdb``, a Unix socket; as ``nobody`` when root) and removed at the end.

stdout is one JSON object: per set-up, per tool, calls, errors, p50 and p95 in
milliseconds, plus the replicas' load reports. Exit status 0 when neither set-up
had an error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from benchmarks.soak_bench import free_port, wait_for_port  # noqa: E402

PACKAGES = ("email", "json", "http", "asyncio", "xml", "concurrent", "importlib", "logging")
TOKEN = "replica-bench-token"
CALL_TIMEOUT_S = 60.0
MIX = (("rlm_find", 3), ("rlm_search", 3), ("rlm_symbols", 3), ("rlm_read", 3), ("rlm_exec", 1))
SEARCH = (r"def \w+_header", r"class \w+Error", "TODO", r"raise ValueError\(", "import re$")
FIND = ("parse an email header", "event loop shutdown", "json decode error position")
SYMBOLS = (("parse", "prefix"), ("Error", "substring"), ("get_event_loop", "exact"))
EXEC = "print(len(repo.files('**/*.py')), repo.symbols('loads', limit=3))"


class Server:
    """One ``rlm-mcp serve --transport http`` subprocess."""

    def __init__(self, tmp: Path, name: str, extra: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = (tmp / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rlm_mcp",
                "serve",
                "--transport",
                "http",
                "--port",
                str(self.port),
                "--auth-token",
                TOKEN,
                *extra,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            cwd=tmp,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def http_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=httpx2.Timeout(30, read=CALL_TIMEOUT_S + 30),
    )


async def call(url: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with http_client() as http, Client(streamable_http_client(url, http_client=http)) as c:
        result = await c.call_tool(tool, args)
        if result.is_error:
            raise RuntimeError(" ".join(getattr(x, "text", "") for x in result.content or []))
        return dict(result.structured_content or {})


def pick(rng: random.Random, readable: list[str]) -> tuple[str, dict[str, Any]]:
    tool = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
    if tool == "rlm_find":
        return tool, {"query": rng.choice(FIND), "limit": 10}
    if tool == "rlm_search":
        return tool, {"pattern": rng.choice(SEARCH), "max_results": 100}
    if tool == "rlm_symbols":
        query, match = rng.choice(SYMBOLS)
        return tool, {"query": query, "match": match, "limit": 50}
    if tool == "rlm_read":
        start = rng.randrange(1, 60)
        return tool, {"path": rng.choice(readable), "start": start, "end": start + 40}
    return tool, {"code": EXEC}


async def client_loop(
    idx: int, url: str, readable: list[str], deadline: float, rows: list[Any]
) -> None:
    rng = random.Random(idx)
    async with http_client() as http:
        while time.monotonic() < deadline:
            try:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    while time.monotonic() < deadline:
                        tool, args = pick(rng, readable)
                        t = time.monotonic()
                        error = None
                        try:
                            with anyio.fail_after(CALL_TIMEOUT_S):
                                result = await client.call_tool(tool, args)
                            if result.is_error:
                                error = " ".join(
                                    getattr(x, "text", "") for x in result.content or []
                                )[:200]
                            elif tool == "rlm_exec":
                                sc = result.structured_content or {}
                                if sc.get("error") or sc.get("timed_out"):
                                    error = f"exec: {sc.get('error')}"[:200]
                        except TimeoutError:
                            error = "timeout"
                        rows.append((tool, time.monotonic() - t, error))
            except Exception as exc:
                rows.append(("session", 0.0, f"{type(exc).__name__}: {exc}"[:200]))
                await anyio.sleep(0.5)


def editor(corpus: Path, files: list[str], rate: float, stop: threading.Event) -> int:
    """Rewrite files at ``rate`` per second: append a function, later drop it again."""
    rng = random.Random(7)
    edits = 0
    while not stop.wait(1.0 / rate):
        path = corpus / rng.choice(files)
        text = path.read_text(encoding="utf-8", errors="replace")
        marker = "\n\ndef replica_bench_marker():\n    return 1\n"
        path.write_text(text.replace(marker, "") if marker in text else text + marker)
        edits += 1
    return edits


def table(rows: list[Any]) -> dict[str, Any]:
    by_tool: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    for tool, seconds, error in rows:
        by_tool[tool].append((seconds, error))
    out: dict[str, Any] = {}
    for tool, items in sorted(by_tool.items()):
        ok = sorted(s for s, e in items if e is None)
        errors = Counter(e for _, e in items if e is not None)
        out[tool] = {
            "calls": len(items),
            "errors": sum(errors.values()),
            "p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
            "p95_ms": round(ok[min(len(ok) - 1, round(0.95 * (len(ok) - 1)))] * 1000, 1)
            if ok
            else None,
            "error_samples": [f"{n}x {e}" for e, n in errors.most_common(3)],
        }
    return out


async def drive(urls: list[str], args: argparse.Namespace, corpus: Path) -> dict[str, Any]:
    readable = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.py"))[:400]
    rows: list[Any] = []
    stop = threading.Event()
    edits: list[int] = []
    ed = threading.Thread(
        target=lambda: edits.append(editor(corpus, readable, args.edit_rate, stop)), daemon=True
    )
    ed.start()
    deadline = time.monotonic() + args.seconds
    try:
        async with anyio.create_task_group() as tg:
            for i in range(args.clients):
                tg.start_soon(client_loop, i, urls[i % len(urls)], readable, deadline, rows)
    finally:
        stop.set()
        ed.join(timeout=10)
    tools = table(rows)
    return {
        "tools": tools,
        "errors": sum(t["errors"] for t in tools.values()),
        "calls": sum(t["calls"] for t in tools.values()),
        "edits": edits[0] if edits else 0,
    }


def base_env(tmp: Path, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_"))}
    return env | {
        "RLM_ALLOWED_ROOTS": str(tmp),
        "RLM_CACHE_DIR": str(tmp / f"cache-{name}"),
        "RLM_TRAJECTORY_DIR": "off",
        "RLM_SANDBOX_UNSAFE": "1" if shutil.which("bwrap") is None else "0",
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "PYTHONUNBUFFERED": "1",
    }


async def run_postgres(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, Any]:
    corpus = tmp / "corpus-pg"
    build_corpus(corpus)
    env = base_env(tmp, "pg") | {"RLM_INDEX_URL": url}
    writer = Server(tmp, "writer", [], env)
    replicas: list[Server] = []
    try:
        t = time.monotonic()
        loaded = await call(writer.url, "rlm_load", {"path": str(corpus)})
        out: dict[str, Any] = {
            "cold_index_s": round(time.monotonic() - t, 2),
            "files": loaded.get("files"),
        }
        replicas = [Server(tmp, f"replica{i}", ["--no-watch"], env) for i in range(args.replicas)]
        loads = []
        for r in replicas:
            t = time.monotonic()
            rep = await call(r.url, "rlm_load", {"path": str(corpus)})
            loads.append(
                {
                    "parsed": rep.get("parsed"),
                    "reused": rep.get("reused"),
                    "seconds": round(time.monotonic() - t, 2),
                }
            )
        out["replica_loads"] = loads
        out |= await drive([r.url for r in replicas], args, corpus)
        out["replica_catch_up_s"] = await catch_up(corpus, [r.url for r in replicas])
        return out
    finally:
        for s in [*replicas, writer]:
            s.stop()


async def catch_up(corpus: Path, urls: list[str], deadline_s: float = 60.0) -> list[float | None]:
    """Seconds until each replica's grep finds a file the writer indexed just now."""
    marker = f"replica_bench_fresh_{int(time.time() * 1000)}"
    (corpus / "fresh.py").write_text(f"def {marker}():\n    return 1\n")
    t0 = time.monotonic()
    out: list[float | None] = []
    for url in urls:
        seen: float | None = None
        while time.monotonic() - t0 < deadline_s:
            hits = await call(url, "rlm_search", {"pattern": marker})
            if hits.get("hits"):
                seen = round(time.monotonic() - t0, 2)
                break
            await anyio.sleep(0.1)
        out.append(seen)
    return out


async def run_sqlite(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    corpus = tmp / "corpus-sqlite"
    build_corpus(corpus)
    server = Server(tmp, "sqlite", [], base_env(tmp, "sqlite"))
    try:
        t = time.monotonic()
        loaded = await call(server.url, "rlm_load", {"path": str(corpus)})
        out: dict[str, Any] = {
            "cold_index_s": round(time.monotonic() - t, 2),
            "files": loaded.get("files"),
        }
        out |= await drive([server.url], args, corpus)
        return out
    finally:
        server.stop()


def build_corpus(root: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for pkg in PACKAGES:
        shutil.copytree(stdlib / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--edit-rate", type=float, default=2.0, help="file edits per second")
    ap.add_argument("--index-url", help="an existing PostgreSQL (default: a throwaway cluster)")
    ap.add_argument("--skip-sqlite", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlm-replicas-"))
    os.chmod(tmp, 0o755)
    cluster = None
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "index_url"},
        "cpus": os.cpu_count(),
    }
    try:
        url = args.index_url
        if url is None:
            from tests.pg_cluster import Cluster, pg_bin

            bindir = pg_bin()
            if bindir is None:
                print("PostgreSQL is not installed: pass --index-url", file=sys.stderr)
                return 2
            cluster = Cluster(bindir)
            url = cluster.url
        report["postgres"] = anyio.run(run_postgres, args, tmp, url)
        if not args.skip_sqlite:
            report["sqlite"] = anyio.run(run_sqlite, args, tmp)
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    for name in ("postgres", "sqlite"):
        if name in report:
            r = report[name]
            print(
                f"{name}: {r['calls']} calls, {r['errors']} errors, {r['edits']} edits",
                file=sys.stderr,
            )
            for tool, t in r["tools"].items():
                print(
                    f"  {tool:12} p50 {t['p50_ms']} ms  p95 {t['p95_ms']} ms  errors {t['errors']}",
                    file=sys.stderr,
                )
    failed = sum(report[n]["errors"] for n in ("postgres", "sqlite") if n in report)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
