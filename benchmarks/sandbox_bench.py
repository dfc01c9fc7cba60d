"""Latency of sandbox sessions: start, exec round trip, host call, 100 MB lazy context.

Run: ``.venv/bin/python benchmarks/sandbox_bench.py [--quick]``. Targets: start <= 300 ms,
trivial exec <= 5 ms p50, host call <= 2 ms p50; the second reference to the context must be
as fast as a trivial exec (no per-call copy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Session, SessionConfig, detect_isolation


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, samples: list[float], target_ms: float | None = None) -> None:
    p50 = statistics.median(samples) * 1000
    p95 = percentile(samples, 0.95) * 1000
    goal = f"  (target p50 <= {target_ms:g} ms)" if target_ms is not None else ""
    print(f"{name:<34} n={len(samples):<5} p50={p50:8.3f} ms  p95={p95:8.3f} ms{goal}")


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def bench_start(n: int) -> None:
    def start_close() -> None:
        session = Session(SessionConfig(), {})
        session.start()
        samples.append(time.perf_counter() - t0)
        session.close()

    samples: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        start_close()
    report("session start", samples, 300)


def bench_exec_and_calls(n: int) -> None:
    with Session(SessionConfig(), {"echo": lambda x: x}) as session:
        session.exec("1")
        report("trivial exec round trip", timed(lambda: session.exec("1"), n), 5)
        one_call = timed(lambda: session.exec("echo(1)"), n)
        report("exec with one host call", one_call, None)
        result = session.exec(
            "import time\n"
            f"t = []\nfor _ in range({n}):\n"
            "    t0 = time.perf_counter(); echo(1); t.append(time.perf_counter() - t0)\n"
        )
        assert result.error is None, result.error
        inner = [float(x) for x in session.get("t")]
        report("host call round trip (in worker)", inner, 2)


def bench_context(size_mb: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "context.txt"
        line = "x" * 79 + "\n"
        with path.open("w") as fh:
            fh.write(line * (size_mb * 1024 * 1024 // len(line)))
        first: list[float] = []
        second: list[float] = []
        for _ in range(repeats):
            config = SessionConfig(lazy_text={"context": path}, exec_timeout=60)
            with Session(config, {}) as session:
                r1 = session.exec("len(context)")
                r2 = session.exec("len(context)")
                assert r1.error is None and r2.error is None, (r1.error, r2.error)
                first.append(r1.duration)
                second.append(r2.duration)
        report(f"{size_mb} MB context, first reference", first, None)
        report(f"{size_mb} MB context, second reference", second, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    scale = 1 if args.quick else 5
    print(detect_isolation().describe())
    bench_start(4 * scale)
    bench_exec_and_calls(200 * scale)
    bench_context(100, scale)


if __name__ == "__main__":
    main()
