"""Start-up benchmark: ``rlm-mcp --help`` against ``python -c pass`` in the same run.

Usage: ``python benchmarks/cli_bench.py [--runs 15]``

``--help`` must not import the model, index or sandbox code (target: under 150 ms on
the project's 2-core machine). Each command runs ``--runs`` times; the median and the
best are printed, with the interpreter's own start-up as the reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    py = timed([sys.executable, "-c", "pass"], args.runs)
    helps = {
        cmd: timed([sys.executable, "-m", "rlm_mcp", *cmd.split()], args.runs)
        for cmd in ("--help", "ask --help", "--version")
    }
    res = {
        "python_c_pass_ms": {
            "median": round(statistics.median(py) * 1000, 1),
            "best": round(min(py) * 1000, 1),
        },
    }
    for cmd, times in helps.items():
        res[f"rlm-mcp {cmd}"] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "best_ms": round(min(times) * 1000, 1),
            "over_python_ms": round((statistics.median(times) - statistics.median(py)) * 1000, 1),
            "under_150ms": statistics.median(times) < 0.150,
        }
    sys.stdout.write(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
