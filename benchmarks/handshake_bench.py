"""Handshake latency while a cold load runs: does the server answer new clients within 1 s?

Usage: ``python -m benchmarks.handshake_bench [--copies 5] [--interval 0.2]``

Builds the scaled corpus (this interpreter's standard library copied ``--copies``
times, about 180 MB at 5), serves ``rlm-mcp serve --transport http`` on loopback,
and has one client ``rlm_load`` it (the call returns at once with ``loading``).
While the load runs, a fresh SDK client connects every ``--interval`` seconds and
times its handshake (``server/discover`` or ``initialize``) plus ``tools/list``;
the same is timed first with the server idle. The loading client itself has a 5 s read
timeout (``READ_TIMEOUT``), and between handshakes it searches the corpus for a literal
(``rlm_search``, answered from a direct scan while the texts load, then from the index).
Prints n, p50, p99 and max for both, the searches (how many were partial, how many found
the definition, the slowest), the load's own time, and the bars (handshake p99 at most
1 s; no call of the 5 s client timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

SERVE = [sys.executable, "-m", "rlm_mcp", "serve", "--transport", "http"]
READ_TIMEOUT = 5.0
SEARCH = {"pattern": "def urlopen(", "fixed_strings": True, "max_results": 5}


def build_corpus(dest: Path, copies: int) -> tuple[Path, int, int]:
    src = Path(sysconfig.get_paths()["stdlib"])
    root = dest / "corpus"
    for i in range(copies):
        shutil.copytree(
            src,
            root / f"copy{i}",
            ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc", "test", "tests"),
            symlinks=True,
        )
    files = [p for p in root.rglob("*") if p.is_file()]
    return root, len(files), sum(p.stat().st_size for p in files)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server never listened")


async def handshake(url: str) -> float:
    t0 = time.perf_counter()
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await client.list_tools()
    return time.perf_counter() - t0


def _stats(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    s = sorted(xs)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return (
        f"n={len(s)} p50 {statistics.median(s) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {s[-1] * 1000:.0f} ms"
    )


@dataclass
class Figures:
    idle: list[float]
    busy: list[float] = field(default_factory=list)
    searches: list[float] = field(default_factory=list)
    partial: int = 0
    found: int = 0
    load_returned_s: float = 0.0
    load_status: str | None = None
    load_s: float = 0.0


async def _search(loader: Client, figures: Figures) -> None:
    t0 = time.perf_counter()
    result = await loader.call_tool("rlm_search", SEARCH)
    figures.searches.append(time.perf_counter() - t0)
    out = result.structured_content or {}
    figures.partial += bool(out.get("partial"))
    figures.found += any("def urlopen(" in str(h) for h in out.get("hits", []))


async def measure(root: Path, work: Path, interval: float) -> Figures:
    """Serve, load ``root`` with a 5 s-read-timeout client, and time handshakes meanwhile.
    A timeout of that client raises (``McpError``/``ReadTimeout``) and ends the run."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "XDG_"))},
        "RLM_ALLOWED_ROOTS": str(work),
        "RLM_CACHE_DIR": str(work / "cache"),
        "RLM_NO_WATCH": "1",
        "XDG_STATE_HOME": str(work / "state"),
    }
    url = f"http://127.0.0.1:{port}/mcp"
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen([*SERVE, "--port", str(port)], env=env, stderr=log)
        try:
            _wait_port(port, proc)
            figures = Figures(idle=[await handshake(url) for _ in range(10)])
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=READ_TIMEOUT)) as http,
                Client(
                    streamable_http_client(url, http_client=http),
                    read_timeout_seconds=READ_TIMEOUT,
                ) as loader,
            ):
                t0 = time.perf_counter()
                first = await loader.call_tool("rlm_load", {"path": str(root)})
                figures.load_returned_s = time.perf_counter() - t0
                figures.load_status = (first.structured_content or {}).get("status")
                while True:
                    figures.busy.append(await handshake(url))
                    await _search(loader, figures)
                    repos = await loader.call_tool("rlm_repos", {})
                    listed = (repos.structured_content or {}).get("repositories", [])
                    if (
                        listed
                        and listed[0].get("status", "ready") == "ready"
                        and not listed[0].get("indexing")
                    ):
                        break
                    await asyncio.sleep(interval)
                figures.load_s = time.perf_counter() - t0
            return figures
        finally:
            proc.terminate()
            proc.wait(30)


def report(f: Figures) -> None:
    print(f"rlm_load returned in {f.load_returned_s:.2f} s with status {f.load_status!r}")
    print(f"load (texts, trigram index and symbols) done after {f.load_s:.1f} s")
    print(f"handshake + tools/list, server idle:   {_stats(f.idle)}")
    print(f"handshake + tools/list, during the load: {_stats(f.busy)} (bar: p99 1000 ms)")
    print(
        f"rlm_search by the {READ_TIMEOUT:g} s-timeout client during the load: "
        f"{_stats(f.searches)}; {f.partial} partial, {f.found} found the definition; "
        "no call timed out"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--interval", type=float, default=0.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root, files, size = build_corpus(work, args.copies)
        print(f"corpus: {files:,} files, {size / 1e6:.0f} MB ({args.copies} copies of the stdlib)")
        report(asyncio.run(measure(root, work, args.interval)))


if __name__ == "__main__":
    main()
