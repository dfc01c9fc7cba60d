"""A branch switch of ``--switch`` files under the watcher: how long until the index is fresh.

Usage: ``python benchmarks/switch_bench.py [--copies 5] [--switch 10000]``

Builds the scaled corpus (this interpreter's stdlib, ``--copies`` times) as a git
repository, commits it on ``main``, and makes a branch ``edited`` on which ``--switch``
Python files each gain one new function. The corpus is loaded cold (symbols complete)
with a watcher on, then ``git checkout edited`` runs, and the benchmark polls what a
client would read (:class:`~rlm_mcp.service.RlmService`'s status of the repository,
and look-ups) every 50 ms. Prints:

* how long git itself took;
* when the status first said ``pending_changes`` (and whether any status claimed
  ``fresh`` before the index matched the branch: it must not);
* when grep finds the new text (texts in), and when the symbols are complete
  (``fresh``, and the last new function found by name): the bar is 30 s;
* how many rescans/batches the watcher applied for it (one change set: 1).

Nothing leaves the machine; the corpus lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlm_mcp.config import IndexSettings, SandboxSettings, Settings  # noqa: E402
from rlm_mcp.service import RlmService  # noqa: E402

BAR_S = 30.0


def _git(root: Path, *args: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def build(work: Path, copies: int, switch: int) -> tuple[Path, int]:
    src = Path(sysconfig.get_paths()["stdlib"])
    tree = work / "tree"
    ignore = shutil.ignore_patterns("site-packages", "dist-packages", "__pycache__", "*.pyc")
    for i in range(copies):
        shutil.copytree(src, tree / f"copy{i}", ignore=ignore, symlinks=True)
    _git(tree, "init", "-q", "-b", "main")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "corpus")
    _git(tree, "checkout", "-q", "-b", "edited")
    py = sorted(p for p in tree.rglob("*.py") if p.is_file() and not p.is_symlink())
    chosen = py[:switch]
    for n, path in enumerate(chosen):
        with path.open("a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(f"\n\ndef switched_{n}():\n    return {n}\n")
    _git(tree, "commit", "-q", "-am", "edited")
    _git(tree, "checkout", "-q", "main")
    return tree, len(chosen)


async def measure(tree: Path, work: Path, changed: int) -> None:
    settings = Settings(
        index=IndexSettings(cache_dir=work / "cache", debounce_seconds=0.5),
        sandbox=SandboxSettings(),
        allowed_roots=(work,),
        trajectory_dir=work / "trajectories",
    )
    service = RlmService(settings)
    try:
        t0 = time.perf_counter()
        await service.load(str(tree))
        loaded = service.list()[0]
        while not loaded.fresh:
            await asyncio.sleep(0.2)
            loaded = service.list()[0]
        print(f"cold load until fresh: {time.perf_counter() - t0:.1f} s, {loaded.files:,} files")
        repo = service.get()  # the live repository and its watcher
        watcher = repo.watcher
        assert watcher is not None
        batches_before = watcher.git_changes
        last = f"switched_{changed - 1}"
        t0 = time.perf_counter()
        await asyncio.to_thread(_git, tree, "checkout", "-q", "edited")
        git_s = time.perf_counter() - t0
        first_pending = lied = texts_s = None
        while True:
            now = time.perf_counter() - t0
            status = service.list()[0]
            if status.pending_changes and first_pending is None:
                first_pending = now
            if texts_s is None and repo.repo.grep(f"def {last}\\(", max_results=1):
                texts_s = now
            if status.fresh:
                found = bool(repo.repo.definition(last))
                if not found and lied is None:
                    lied = now
                if found:
                    break
            if now > 600:
                raise SystemExit("the switch was not applied within 600 s")
            await asyncio.sleep(0.05)
        fresh_s = time.perf_counter() - t0
    finally:
        await service.aclose()
    print(f"git checkout of {changed:,} changed files: {git_s:.1f} s")
    if first_pending is not None:
        print(f"status said pending_changes after {first_pending:.2f} s (from the checkout start)")
    print(f"new text found by grep after {texts_s or 0:.1f} s")
    verdict = "met" if fresh_s <= BAR_S else "not met"
    print(f"fresh, symbols complete after {fresh_s:.1f} s (bar {BAR_S:.0f} s: {verdict})")
    print(f"git change sets taken up: {watcher.git_changes - batches_before} (one switch: 1)")
    print("a status claimed fresh before the index matched: " + ("YES" if lied else "no"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--switch", type=int, default=10_000)
    args = ap.parse_args()
    if shutil.which("git") is None:
        raise SystemExit("git is not installed")
    with tempfile.TemporaryDirectory(prefix="rlm-switch-") as name:
        work = Path(name)
        tree, changed = build(work, args.copies, args.switch)
        print(f"corpus: {args.copies} copies of the stdlib; {changed:,} files differ on 'edited'")
        asyncio.run(measure(tree, work, changed))


if __name__ == "__main__":
    main()
