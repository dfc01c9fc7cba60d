"""The cache's size and cold time on the scaled monorepo check: the stdlib, several copies.

Usage: ``python benchmarks/cache_bench.py [--copies 5] [--keep DIR]``

The scaled check of the monorepo issue: a cold load of ``--copies`` copies of
this interpreter's stdlib (about 36 MB of indexed text each) in a fresh child
process, against ``ctags -R`` over the same tree in the same run, then:

- the cache on disk (the database after a WAL checkpoint) over the indexed text,
  with each table's and index's share from SQLite's ``dbstat``;
- what the compressed texts cost to read back: ``text()`` of every file, and a
  grep that reads every text (a pattern no trigram can narrow).

Bars (issue: monorepo cost): the cache at most 2.5x the indexed text, the cold
load at most 3x ctags at 180 MB. stdout is one JSON object; a table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
t0 = time.perf_counter()
repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), watch=False))
seconds = time.perf_counter() - t0
rep = repo.report
repo.close()
print(json.dumps({"seconds": seconds, "files": rep.files, "bytes": rep.bytes}))
"""

READ_BACK = """
import json, sys, time
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), watch=False))
paths = repo.files()
t0 = time.perf_counter()
chars = sum(len(repo.text(p) or "") for p in paths)
read_s = time.perf_counter() - t0
t0 = time.perf_counter()
hits = repo.grep(r"[zq]{3}", max_results=10**9)
grep_s = time.perf_counter() - t0
repo.close()
print(json.dumps({"read_all_s": read_s, "chars": chars, "scan_grep_s": grep_s,
                  "scan_grep_hits": len(hits)}))
"""


def build(work: Path, copies: int) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    tree = work / "tree"
    ignore = shutil.ignore_patterns("site-packages", "dist-packages", "__pycache__", "*.pyc")
    for i in range(copies):
        shutil.copytree(src, tree / f"copy{i}", ignore=ignore, symlinks=True)
    return tree


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, check=True, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def breakdown(db: Path, text_bytes: int) -> tuple[int, list[tuple[str, float]]]:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    size = sum(p.stat().st_size for p in db.parent.iterdir() if p.is_file())
    return size, [(str(n), round(int(s) / text_bytes, 3)) for n, s in rows if s > text_bytes / 200]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rlm-cache-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    if not tree.is_dir():
        build(work, args.copies)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(["ctags", "-R", "-f", str(work / "tags"), str(tree)], check=True)
    ctags_s = time.perf_counter() - t0
    cold = child(CHILD, str(tree), str(cache))
    db = next(cache.glob("*.sqlite"))
    size, tables = breakdown(db, cold["bytes"])
    back = child(READ_BACK, str(tree), str(cache))
    res = {
        "copies": args.copies,
        "files": cold["files"],
        "text_mb": round(cold["bytes"] / 1e6, 1),
        "cache_mb": round(size / 1e6, 1),
        "cache_ratio": round(size / cold["bytes"], 2),
        "cold_s": round(cold["seconds"], 1),
        "ctags_s": round(ctags_s, 1),
        "cold_vs_ctags": round(cold["seconds"] / ctags_s, 2),
        "read_all_texts_s": round(back["read_all_s"], 2),
        "read_mb_per_s": round(back["chars"] / 1e6 / back["read_all_s"], 1),
        "scan_grep_s": round(back["scan_grep_s"], 2),
        "tables_x_text": dict(tables),
    }
    print(json.dumps(res))
    print(
        f"{res['text_mb']} MB text in {res['files']} files: cache {res['cache_mb']} MB = "
        f"{res['cache_ratio']}x (bar 2.5x); cold {res['cold_s']} s vs ctags {res['ctags_s']} s "
        f"= {res['cold_vs_ctags']}x (bar 3x); every text read back in "
        f"{res['read_all_texts_s']} s ({res['read_mb_per_s']} MB/s), a full-scan grep "
        f"{res['scan_grep_s']} s",
        file=sys.stderr,
    )
    for name, share in tables:
        print(f"  {name:28s} {share:6.3f}x", file=sys.stderr)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
