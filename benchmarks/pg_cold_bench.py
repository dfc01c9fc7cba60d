"""Cold index of the standard library into PostgreSQL against SQLite, in the same run.

Usage: ``python benchmarks/pg_cold_bench.py [--runs 2] [--index-url postgresql://...]``

The interpreter's standard library (site-packages excluded) is copied to a
temporary directory and loaded cold, alternately into a fresh SQLite cache and
into a fresh PostgreSQL identity (a throwaway cluster unless ``--index-url``
names one). Each load runs in its own child process. Prints one JSON object with
every run and the median ratio; the bar is PostgreSQL at most 2x SQLite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import sys, time, json
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index.repository import load
url = sys.argv[3] or None
settings = IndexSettings(cache_dir=Path(sys.argv[2]), index_url=url, watch=False)
t0 = time.perf_counter()
repo = load(sys.argv[1], settings)
print(json.dumps({"seconds": time.perf_counter() - t0, "files": repo.report.files,
                  "parsed": repo.report.parsed, "symbols": repo.store.symbol_count()}))
repo.close()
"""


def run(root: Path, cache: Path, url: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(cache), url],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--index-url", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rlm-pgcold-"))
    cluster = None
    try:
        src = Path(sysconfig.get_paths()["stdlib"])
        ignore = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")
        roots = [work / f"stdlib-{i}" for i in range(args.runs)]
        for root in roots:  # one root per run: a new PostgreSQL identity, a cold index
            shutil.copytree(src, root, ignore=ignore)
        url = args.index_url
        if url is None:
            from tests.pg_cluster import Cluster, pg_bin

            bindir = pg_bin()
            if bindir is None:
                raise SystemExit("PostgreSQL is not installed (no initdb)")
            cluster = Cluster(bindir)
            url = cluster.url
        res: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgres": []}
        for i, root in enumerate(roots):
            res["sqlite"].append(run(root, work / f"cache-{i}", ""))
            res["postgres"].append(run(root, work / f"unused-{i}", url))
        sq = statistics.median(r["seconds"] for r in res["sqlite"])
        pg = statistics.median(r["seconds"] for r in res["postgres"])
        print(
            json.dumps({"runs": res, "sqlite_s": sq, "postgres_s": pg, "ratio": pg / sq}, indent=1)
        )
        print(
            f"cold stdlib: SQLite {sq:.1f} s, PostgreSQL {pg:.1f} s = {pg / sq:.2f}x (bar 2x)",
            file=sys.stderr,
        )
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
