"""The OpenAI-compatible endpoint's overhead and its behaviour under 50 concurrent streams.

Prints:
  * p50/p95 wall time per request of the same one-turn query (the root model answers
    ``FINAL("ok")`` at once, over a 20 kB conversation) three ways: ``RLM.acompletion``
    (the library, which indexes the text into a temporary repository per call),
    ``RlmService.query(scratch=True)`` in-process (the work the endpoint asks for), and
    ``POST /v1/chat/completions`` through the ``openai`` client against the ``/v1`` app
    served by uvicorn over that same service, in this process (so both run identical
    work). The endpoint's overhead is its p50 minus the service's (target: <= 5 ms:
    HTTP, JSON, the client itself); also shown against the library;
  * the transport floor: ``GET /v1/models`` and a 20 kB request refused with 400 (read,
    decoded, checked; no query), through the same client;
  * 50 concurrent streamed requests against ``rlm-mcp serve --openai-only`` in a
    subprocess, with a loopback model adding 200 ms per call: errors, wall time, the
    most calls the model saw at once, the server's RSS (and its children's) before and
    after, and after the session TTL; ``--rounds`` (3) repeats it, so a server whose RSS
    keeps climbing round after round shows it.

Nothing leaves 127.0.0.1. Run: python benchmarks/openai_bench.py [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import uvicorn

from rlm_mcp.api import RLM
from rlm_mcp.config import IndexSettings, ModelEndpoint, Settings
from rlm_mcp.http import bind, build_http_app
from rlm_mcp.openai import OpenAIOptions
from rlm_mcp.service import RlmService
from rlm_mcp.testing import LoopbackLLMServer, Reply

TOKEN = "bench-token"
ROOT = "bench-model"
QUESTION = "What does the document say?"
DOCUMENT = "\n".join(f"line {i}: some text of a conversation" for i in range(500))
CONCURRENT = 50


SESSION_TTL = 5.0
"""The served process's session TTL, short so the bench sees every session end."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a zombie or a kernel thread


def _serve(tmp: Path, llm: LoopbackLLMServer) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_"))}
    env.update(
        RLM_MODEL=ROOT,
        RLM_BASE_URL=llm.base_url,
        RLM_API_KEY="unused",
        RLM_ALLOWED_ROOTS=str(tmp),
        RLM_CACHE_DIR=str(tmp / "cache"),
        RLM_NO_WATCH="1",
        RLM_SESSION_TTL_SECONDS=str(SESSION_TTL),
        XDG_CONFIG_HOME=str(tmp / "xdg"),
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "rlm_mcp", "serve", "--openai-only", "--port", str(port)),
            *("--auth-token", TOKEN, "--openai-max-concurrent", str(CONCURRENT + 8)),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("w"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the server did not listen")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def overhead(tmp: Path, llm: LoopbackLLMServer, n: int) -> dict[str, Any]:
    """The same query through the library, the service, and /v1 served over that service."""
    llm.responder = lambda body: '```python\nFINAL("ok")\n```'
    endpoint = ModelEndpoint(ROOT, base_url=llm.base_url, api_key="unused")
    rlm = RLM(endpoint, index=IndexSettings(cache_dir=tmp / "lib-cache", watch=False))
    settings = Settings(
        index=IndexSettings(cache_dir=tmp / "svc-cache", watch=False),
        root_model=endpoint,
        allowed_roots=(tmp,),
    )
    service = RlmService(settings)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = build_http_app(None, auth_token=TOKEN, service=lambda: service, openai=OpenAIOptions())
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", log_config=None)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0
    )
    messages: list[Any] = [
        {"role": "user", "content": DOCUMENT},
        {"role": "user", "content": QUESTION},
    ]
    context = "[user]\n" + DOCUMENT  # what the endpoint renders from the earlier message

    async def library() -> None:
        assert await rlm.acompletion(QUESTION, DOCUMENT + "\n") == "ok"

    async def direct() -> None:
        result = await service.query(QUESTION, None, context=context, scratch=True)
        assert result.answer == "ok", result

    async def http() -> None:
        done = await client.chat.completions.create(model=f"rlm:{ROOT}", messages=messages)
        assert done.choices[0].message.content == "ok", done

    async def models() -> None:
        await client.models.list()

    async def rejected() -> None:  # read, decoded, checked and refused: no query
        with contextlib.suppress(openai.BadRequestError):
            await client.chat.completions.create(
                model=f"rlm:{ROOT}", messages=[*messages[:1], {"role": "assistant", "content": "x"}]
            )

    paths = {"library": library, "service": direct, "endpoint": http, "models": models}
    paths["rejected"] = rejected
    runs: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for fn in paths.values():  # warm up each path
            await fn()
        for _ in range(n):  # interleaved, so drift hits every path alike
            for name, fn in paths.items():
                runs[name].append(await _timed(fn))
    finally:
        await client.close()
        server.should_exit = True
        await serving  # the /v1 app's lifespan closes the service
        sock.close()
    out: dict[str, Any] = {
        k: {"p50_ms": _p(v, 0.5), "p95_ms": _p(v, 0.95)} for k, v in runs.items()
    }
    out["endpoint_over_service_p50_ms"] = out["endpoint"]["p50_ms"] - out["service"]["p50_ms"]
    paired = [e - d for e, d in zip(runs["endpoint"], runs["service"], strict=True)]
    out["endpoint_over_service_paired_median_ms"] = _p(paired, 0.5)
    out["endpoint_over_library_p50_ms"] = out["endpoint"]["p50_ms"] - out["library"]["p50_ms"]
    return out


def _tree_rss_mib(pid: int) -> float:
    """The RSS of ``pid``'s descendants (sandbox workers, helpers), summed."""
    total, stack = 0.0, [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in task.read_text().split():
                    with contextlib.suppress(OSError):
                        total += _rss_mib(int(child))
                    stack.append(int(child))
    return total


async def concurrent_streams(llm: LoopbackLLMServer, port: int, pid: int) -> dict[str, Any]:
    llm.responder = lambda body: Reply(text='```python\nFINAL("ok")\n```', delay=0.2)
    peak_before = llm.max_concurrent
    rss_before, kids_before = _rss_mib(pid), _tree_rss_mib(pid)
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0, timeout=300
    )
    errors: list[str] = []

    async def one(i: int) -> None:
        try:
            stream = await client.chat.completions.create(
                model=f"rlm:{ROOT}",
                messages=[
                    {"role": "system", "content": f"request {i}"},
                    {"role": "user", "content": QUESTION},
                ],
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            if text != "ok":
                errors.append(f"request {i}: {text!r}")
        except Exception as exc:
            errors.append(f"request {i}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    finally:
        await client.close()
    wall = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    kids_after = _tree_rss_mib(pid)
    # Each stateless request leaves a session (its REPL) until the TTL: wait for them all to
    # end, so a leak would show as children's RSS that never comes back down.
    t_idle = time.monotonic()
    while _tree_rss_mib(pid) > kids_before + 20 and time.monotonic() - t_idle < SESSION_TTL + 40:
        await asyncio.sleep(0.25)
    return {
        "children_rss_mib_after_ttl": round(_tree_rss_mib(pid), 1),
        "seconds_until_sessions_ended": round(time.monotonic() - t_idle, 1),
        "requests": CONCURRENT,
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 2),
        "model_calls_at_once": max(llm.max_concurrent, peak_before),
        "server_rss_mib_before": round(rss_before, 1),
        "server_rss_mib_after": round(_rss_mib(pid), 1),
        "children_rss_mib_before": round(kids_before, 1),
        "children_rss_mib_after": round(kids_after, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of concurrent streams")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="rlm-openai-bench-") as name,
        LoopbackLLMServer() as llm,
    ):
        tmp = Path(name)
        proc, port = _serve(tmp, llm)
        try:
            figures = asyncio.run(overhead(tmp, llm, args.requests))
            for path in ("library", "service", "endpoint", "models", "rejected"):
                f = figures[path]
                print(f"{path:9s} p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms")
            over = figures["endpoint_over_service_p50_ms"]
            print(
                f"endpoint overhead over the in-process service, p50: {over:+.1f} ms (target <= 5)"
            )
            paired = figures["endpoint_over_service_paired_median_ms"]
            print(f"  (median of the paired per-iteration differences: {paired:+.1f} ms)")
            lib = figures["endpoint_over_library_p50_ms"]
            print(f"endpoint vs RLM.acompletion, p50: {lib:+.1f} ms")
            for round_no in range(1, args.rounds + 1):  # flat RSS: rounds alike
                print(f"round {round_no}:")
                streams = asyncio.run(concurrent_streams(llm, port, proc.pid))
                print(
                    f"{streams['requests']} concurrent streams: {streams['errors']} errors, "
                    f"{streams['wall_s']} s, {streams['model_calls_at_once']} model calls at once, "
                    f"server RSS {streams['server_rss_mib_before']} -> "
                    f"{streams['server_rss_mib_after']} MiB (its children "
                    f"{streams['children_rss_mib_before']} -> {streams['children_rss_mib_after']} MiB)"
                )
                print(
                    f"  after the {SESSION_TTL:g} s session TTL: children "
                    f"{streams['children_rss_mib_after_ttl']} MiB, "
                    f"{streams['seconds_until_sessions_ended']} s after the streams ended"
                )
                for line in streams["first_errors"]:
                    print("  ", line)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
