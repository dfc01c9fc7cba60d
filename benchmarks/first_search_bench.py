"""First-search benchmark: ``rlm-mcp search`` on a never-indexed tree against ``rg``.

Usage: ``python benchmarks/first_search_bench.py [--runs 3]``

The tree is this interpreter's standard library copied to a temporary directory
(``site-packages`` and ``__pycache__`` left out). Each run gives ``rlm-mcp search``
a fresh cache directory, so every search is a first search (answered from the
direct scan while ``rlm-mcp index`` runs in the background; the benchmark waits
for that index to end before the next run, so it never competes with a timing).
``rg`` searches the same tree for the same pattern in the same run; the ratio
is printed against the bar (at most 3x rg). Then Ctrl-C latency: SIGINT sent
while the grep helper runs a catastrophic regex, against the 0.5 s bar.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = (
    ("literal", "def __init__"),
    ("no literal", r"\b\d{4}-\d\d-\d\d\b"),
)
CATASTROPHIC = "(a+)+$"


def copy_stdlib(dest: Path) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    tree = dest / "stdlib"
    shutil.copytree(
        src,
        tree,
        ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"),
        symlinks=True,
    )
    (tree / "zz_slow.txt").write_text("a" * 64 + "!\n")
    return tree


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "XDG_"))}
    env.update(RLM_CACHE_DIR=str(cache), XDG_CACHE_HOME=str(cache / "xdg"), NO_COLOR="1")
    return env


def _wait_gone(pid: int, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)


def time_rg(tree: Path, pattern: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["rg", "--no-config", "-n", "--color", "never", pattern, "."],
        cwd=tree,
        capture_output=True,
    )
    return time.perf_counter() - t0, proc.stdout.count(b"\n")


def time_first_search(tree: Path, pattern: str, work: Path) -> tuple[float, str, int]:
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "rlm_mcp", "search", "--max-results", "100000", pattern],
        cwd=tree,
        env=_env(cache),
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    found = re.search(r"pid (\d+)", proc.stderr)
    if found:
        _wait_gone(int(found.group(1)))
    how = "scan" if "direct scan" in proc.stderr else "index"
    return took, how, proc.stdout.count("\n")


def ctrl_c_latency(tree: Path, work: Path) -> float | None:
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "rlm_mcp", "search", CATASTROPHIC, "-g", "zz_slow.txt"],
        cwd=tree,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _helper(proc.pid):
            if proc.poll() is not None:
                return None
            time.sleep(0.01)
        time.sleep(0.5)
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(30)
        return time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _helper(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if (
                int(fields[2]) == pgid
                and b"serve_fd" in Path(f"/proc/{entry}/cmdline").read_bytes()
            ):
                return True
        except OSError:
            continue
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("rg") is None:
        sys.exit("rg is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tree = copy_stdlib(work)
        files = sum(1 for p in tree.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        print(
            f"tree: {files:,} files, {size / 1e6:.1f} MB (a copy of {sysconfig.get_paths()['stdlib']})"
        )
        time_rg(tree, "warm the page cache")
        for label, pattern in PATTERNS:
            rg = [time_rg(tree, pattern) for _ in range(args.runs)]
            ours = [time_first_search(tree, pattern, work) for _ in range(args.runs)]
            rg_s = statistics.median(t for t, _ in rg)
            our_s = statistics.median(t for t, _, _ in ours)
            how = {h for _, h, _ in ours}
            print(
                f"first search, {label} {pattern!r}: rlm-mcp {our_s:.3f}s ({'/'.join(how)}, "
                f"{ours[0][2]:,} lines) vs rg {rg_s:.3f}s ({rg[0][1]:,} lines): "
                f"{our_s / rg_s:.1f}x rg (bar: 3x)"
            )
        latency = ctrl_c_latency(tree, work)
        if latency is None:
            print("ctrl-c: the search ended before the grep helper started")
        else:
            print(f"ctrl-c during {CATASTROPHIC!r}: exited {latency:.3f}s after SIGINT (bar: 0.5s)")


if __name__ == "__main__":
    main()
