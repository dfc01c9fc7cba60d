"""Engine overhead and sub-call concurrency, measured.

Prints:
  * the engine's own overhead per root iteration with a zero-latency scripted
    model, with sandbox execution excluded and included (target: <= 10 ms);
  * the overhead per sub-call (llm_query round trip through the sandbox);
  * the wall-clock speed-up of llm_query_batched over sequential llm_query
    against a loopback OpenAI-compatible server adding 200 ms per call
    (target: a batch of 16 at least 8x faster).

Run: python benchmarks/engine_bench.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from rlm_mcp.backends import CompletionRequest, OpenAICompatibleBackend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint
from rlm_mcp.engine.core import ModelSpec, RLMEngine
from rlm_mcp.engine.prompts import SUB_SYSTEM
from rlm_mcp.index import load
from rlm_mcp.testing import LoopbackLLMServer, ScriptedBackend
from sandbox import Session

ITERATIONS = 60
SUB_CALLS = 200


def _repo(tmp: Path) -> Any:
    root = tmp / "repo"
    root.mkdir()
    for i in range(20):
        (root / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    return load(root, IndexSettings(cache_dir=tmp / "cache", watch=False))


class ExecTimer:
    """Adds up the time the host spends inside Session.exec (the sandbox round trip)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._orig = Session.exec

    def __enter__(self) -> ExecTimer:
        timer = self
        orig = self._orig

        def timed(session: Session, code: str, timeout: float | None = None) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(session, code, timeout)
            finally:
                timer.total += time.perf_counter() - t0

        Session.exec = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Session.exec = self._orig  # type: ignore[method-assign]


async def iteration_overhead(repo: Any) -> tuple[float, float]:
    counter = {"n": 0}

    def root(request: CompletionRequest) -> str:
        counter["n"] += 1
        if counter["n"] >= ITERATIONS:
            return '```python\nFINAL("done")\n```'
        return f"```python\nx = {counter['n']}\n```"

    engine = RLMEngine(
        ModelSpec(ScriptedBackend(root)),
        limits=Limits(max_iterations=ITERATIONS + 5, max_llm_calls=ITERATIONS + 5),
    )
    with ExecTimer() as timer:
        t0 = time.perf_counter()
        result = await engine.run("bench", repo)
        total = time.perf_counter() - t0
    assert result.status == "completed", result
    # session start/close is paid once per query, not per iteration
    per_iter = total / ITERATIONS
    return per_iter - timer.total / ITERATIONS, per_iter


async def subcall_overhead(repo: Any) -> float:
    def reply(request: CompletionRequest) -> str:
        if request.messages[0].content == SUB_SYSTEM:
            return "ok"
        if len(request.messages) > 2:
            return '```python\nFINAL("done")\n```'
        return f'```python\nimport time\nt0 = time.perf_counter()\nfor i in range({SUB_CALLS}):\n    llm_query(f"p{{i}}")\nprint(time.perf_counter() - t0)\n```'

    engine = RLMEngine(
        ModelSpec(ScriptedBackend(reply)), limits=Limits(max_llm_calls=SUB_CALLS + 10)
    )
    t0 = time.perf_counter()
    result = await engine.run("bench", repo)
    assert result.status == "completed", result
    assert result.sub_calls == SUB_CALLS
    return (time.perf_counter() - t0) / SUB_CALLS


async def batch_speedup(repo: Any, n: int = 16, latency: float = 0.2) -> tuple[float, float]:
    timings: dict[str, float] = {}
    with LoopbackLLMServer(latency=latency) as server:

        def respond(body: dict[str, Any]) -> str:
            messages = body["messages"]
            if messages[0]["content"] == SUB_SYSTEM:
                return "ok"
            last = messages[-1]["content"]
            if "seq=" in last or "batch=" in last:
                return '```python\nFINAL("done")\n```'
            mode = "batch" if "BATCH" in messages[1]["content"] else "seq"
            if mode == "batch":
                call = f'rs = llm_query_batched([f"b{{i}}" for i in range({n})])'
            else:
                call = f'rs = [llm_query(f"s{{i}}") for i in range({n})]'
            return f"```python\nimport time\nt0 = time.perf_counter()\n{call}\nprint('{mode}=', time.perf_counter() - t0)\n```"

        server.responder = respond
        endpoint = ModelEndpoint(model="m", base_url=server.base_url, timeout_seconds=30)
        backend = OpenAICompatibleBackend(endpoint)
        engine = RLMEngine(
            ModelSpec(backend),
            limits=Limits(max_concurrency=n, max_llm_calls=100),
            trajectory_dir=Path(tempfile.mkdtemp()),
        )
        for mode in ("SEQ", "BATCH"):
            result = await engine.run(f"{mode} question", repo)
            assert result.status == "completed", result
            timings[mode] = float(_find_timing(result.trajectory, mode.lower()))
        await backend.aclose()
    return timings["SEQ"], timings["BATCH"]


def _find_timing(trajectory: Path | None, mode: str) -> str:
    import json

    assert trajectory is not None
    for line in trajectory.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "exec" and f"{mode}=" in (event.get("stdout") or ""):
            return str(event["stdout"].split("=")[1].strip())
    raise RuntimeError(f"no {mode} timing in {trajectory}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = _repo(Path(tmp))
        try:
            runs = [await iteration_overhead(repo) for _ in range(3)]
            excl = statistics.median(r[0] for r in runs) * 1000
            incl = statistics.median(r[1] for r in runs) * 1000
            print(f"root iteration overhead, sandbox excluded: {excl:.2f} ms  (target <= 10 ms)")
            print(f"root iteration overhead, sandbox included: {incl:.2f} ms")
            sub = statistics.median([await subcall_overhead(repo) for _ in range(3)]) * 1000
            print(f"sub-call overhead (llm_query round trip, zero-latency model): {sub:.2f} ms")
            seq, batch = await batch_speedup(repo)
            print(
                f"16 sub-calls at 200 ms each: sequential {seq:.2f} s, batched {batch:.2f} s, "
                f"speed-up {seq / batch:.1f}x  (target >= 8x)"
            )
        finally:
            repo.close()


if __name__ == "__main__":
    anyio.run(main)
