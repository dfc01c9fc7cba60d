"""Index benchmark: cold/warm load, watcher latency, grep and memory against reference tools.

Usage: ``python benchmarks/index_bench.py [--edits 50] [--skip-multi]``

Each figure is measured in the same run as its reference (``ctags -R`` for
cold indexing, ``rg`` for grep) over the same files:

(a) the running interpreter's standard library, site-packages excluded, copied
    to a temporary directory;
(b) a multi-language project: a source distribution fetched with ``pip
    download --no-binary :all:`` (tries a few), or this interpreter's mypy and
    mypyc packages (Python, stubs, C) when no registry can be reached.

Ranked search: p50/p95 of ``repo.search`` over natural-language questions on
the warm index, and the cost of its full-text index: a second cold load with
``IndexSettings(ranked_search=False)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlm_mcp.config import IndexSettings  # noqa: E402
from rlm_mcp.index import load  # noqa: E402
from rlm_mcp.watch import RepositoryWatcher  # noqa: E402

PIP_DOWNLOAD = (sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q")
SDISTS = ("Cython", "tree-sitter")
RANKED_QUERIES = (
    "where is the gzip header parsed",
    "how are HTTP cookies serialised",
    "parse a date string in ISO format",
    "thread pool executor shutdown",
    "JSONDecodeError",
    "retry when the connection is refused",
    "format a traceback for display",
    "compile a regular expression pattern",
    "read a zip archive member",
    "email address header parsing",
)
GREP_PATTERNS = (r"def \w+_handler", r"\w+Error\(", r"import (os|sys)$")
CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
t0 = time.perf_counter()
ranked = not os.environ.get("RLM_BENCH_NO_RANKED")
repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), ranked_search=ranked))
seconds = time.perf_counter() - t0
rep = repo.report
repo.close()
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "files": rep.files, "bytes": rep.bytes,
                  "symbols": rep.symbols, "skipped": rep.skipped_by_reason(),
                  "rss": hwm, "worker_rss": kids}))
"""


def copy_stdlib(dest: Path) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    ignore = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")
    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


def fetch_multi(work: Path) -> tuple[str, Path]:
    for name in SDISTS:
        dl = work / f"dl-{name}"
        try:
            subprocess.run(
                [*PIP_DOWNLOAD, "-d", str(dl), name],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except (subprocess.SubprocessError, OSError):
            continue
        archives = list(dl.glob("*.tar.gz"))
        if not archives:
            continue
        out = work / f"src-{name}"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(out, filter="data")
        return f"sdist {archives[0].name}", out
    site = Path(sysconfig.get_paths()["purelib"])
    out = work / "site-mypy"
    for pkg in ("mypy", "mypyc"):
        if (site / pkg).is_dir():
            shutil.copytree(site / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return "site-packages mypy+mypyc (offline fallback)", out


def timed(cmd: list[str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - t0, proc.stdout


def cold_load(root: Path, cache: Path, *, ranked: bool = True) -> dict[str, Any]:
    env = dict(os.environ)
    if not ranked:
        env["RLM_BENCH_NO_RANKED"] = "1"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(cache)],
        capture_output=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    out: dict[str, Any] = json.loads(child.stdout)
    return out


def bench(label: str, root: Path, work: Path, edits: int, recall: bool) -> dict[str, object]:
    cache = work / f"cache-{root.name}"
    res: dict[str, object] = {"corpus": label}
    ctags_s, _ = timed(["ctags", "-R", "-f", str(work / "tags"), str(root)])
    plain = cold_load(root, work / f"cache-plain-{root.name}", ranked=False)
    cold = cold_load(root, cache)
    res.update(
        files=cold["files"],
        mb=round(cold["bytes"] / 1e6, 1),
        symbols=cold["symbols"],
        skipped=cold["skipped"],
        cold_s=round(cold["seconds"], 2),
        ctags_s=round(ctags_s, 2),
        cold_vs_ctags=round(cold["seconds"] / ctags_s, 2),
        cold_without_ranked_s=round(plain["seconds"], 2),
        ranked_index_cost=f"{100 * (cold['seconds'] / plain['seconds'] - 1):+.1f}%",
        peak_rss_x_corpus=round(cold["rss"] / max(cold["bytes"], 1), 2),
        worker_rss_x_corpus=round(cold["worker_rss"] / max(cold["bytes"], 1), 2),
    )
    settings = IndexSettings(cache_dir=cache)
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        repo = load(root, settings)
        warm.append(time.perf_counter() - t0)
        if _ < 2:
            repo.close()
    res["warm_s"] = round(min(warm), 3)
    repo.grep("warm the text cache")
    greps = []
    for pat in GREP_PATTERNS:
        rg_s, rg_out = min(timed(["rg", "-n", "--no-heading", pat, str(root)]) for _ in range(3))
        ours = []
        for _ in range(3):
            t0 = time.perf_counter()
            hits = repo.grep(pat, max_results=10**9)
            ours.append(time.perf_counter() - t0)
        greps.append(
            {
                "pattern": pat,
                "ours_ms": round(min(ours) * 1000, 1),
                "rg_ms": round(rg_s * 1000, 1),
                "ratio": round(min(ours) / rg_s, 2),
                "hits": len(hits),
                "rg_hits": rg_out.count(b"\n"),
            }
        )
    res["grep"] = greps
    ranked = []
    for q in RANKED_QUERIES:
        for _ in range(3):
            t0 = time.perf_counter()
            repo.search(q, 20)
            ranked.append(time.perf_counter() - t0)
    ranked.sort()
    res["ranked_search_p50_ms"] = round(statistics.median(ranked) * 1000, 1)
    res["ranked_search_p95_ms"] = round(ranked[int(0.95 * (len(ranked) - 1))] * 1000, 1)
    targets = [p for p in repo.files("*.py")][:20] or repo.files()[:20]
    lat = []
    with RepositoryWatcher(repo, debounce=settings.debounce_seconds):
        for i in range(edits):
            rel = targets[i % len(targets)]
            marker = f"EDIT_MARKER_{i}_{time.time_ns()}"
            path = root / rel
            v = repo.version
            t0 = time.perf_counter()
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"\n# {marker}\n")
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                repo.wait_for_version(v + 1, timeout=0.5)
                v = repo.version
                if repo.grep(marker, glob=rel, max_results=1):
                    break
            lat.append(time.perf_counter() - t0)
    lat.sort()
    res["edit_p50_ms"] = round(statistics.median(lat) * 1000, 1) if lat else None
    res["edit_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1) if lat else None
    repo.close()
    if recall:
        try:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from symbol_recall import python_recall

            r, found, total = python_recall(root)
            res["python_recall_vs_ctags"] = f"{r:.3f} ({found}/{total})"
        except ImportError:
            res["python_recall_vs_ctags"] = "symbol_recall.py not present"
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--skip-multi", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rlm-index-bench-") as tmp:
        work = Path(tmp)
        corpora = [("stdlib " + sys.version.split()[0], copy_stdlib(work / "stdlib"), True)]
        if not args.skip_multi:
            label, root = fetch_multi(work)
            corpora.append((label, root, False))
        for label, root, recall in corpora:
            res = bench(label, root, work, args.edits, recall)
            sys.stdout.write(json.dumps(res, indent=2) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
