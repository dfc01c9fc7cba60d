"""Handshake latency while a cold load runs: does the server answer new clients within 1 s?

Usage: ``python -m benchmarks.handshake_bench [--copies 5] [--interval 0.2]``

Builds the scaled corpus (this interpreter's standard library copied ``--copies``
times, about 180 MB at 5), serves ``rlm-mcp serve --transport http`` on loopback,
and has one client ``rlm_load`` it (the call returns at once with ``loading``).
While the load runs, a fresh SDK client connects every ``--interval`` seconds and
times its handshake (``server/discover`` or ``initialize``) plus ``tools/list``;
the same is timed first with the server idle. Prints n, p50, p99 and max for both,
the load's own time, and the bar (p99 at most 1 s).
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
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

SERVE = [sys.executable, "-m", "rlm_mcp", "serve", "--transport", "http"]


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


async def run(root: Path, work: Path, interval: float) -> None:
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
            idle = [await handshake(url) for _ in range(10)]
            busy: list[float] = []
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=600)) as http,
                Client(streamable_http_client(url, http_client=http)) as loader,
            ):
                t0 = time.perf_counter()
                first = await loader.call_tool("rlm_load", {"path": str(root)})
                returned = time.perf_counter() - t0
                status = (first.structured_content or {}).get("status")
                print(f"rlm_load returned in {returned:.2f} s with status {status!r}")
                while True:
                    busy.append(await handshake(url))
                    repos = await loader.call_tool("rlm_repos", {})
                    listed = (repos.structured_content or {}).get("repositories", [])
                    if (
                        listed
                        and listed[0].get("status", "ready") == "ready"
                        and not listed[0].get("indexing")
                    ):
                        break
                    await asyncio.sleep(interval)
                took = time.perf_counter() - t0
            print(f"load (texts, trigram index and symbols) done after {took:.1f} s")
            print(f"handshake + tools/list, server idle:   {_stats(idle)}")
            print(f"handshake + tools/list, during the load: {_stats(busy)} (bar: p99 1000 ms)")
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--interval", type=float, default=0.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root, files, size = build_corpus(work, args.copies)
        print(f"corpus: {files:,} files, {size / 1e6:.0f} MB ({args.copies} copies of the stdlib)")
        asyncio.run(run(root, work, args.interval))


if __name__ == "__main__":
    main()
