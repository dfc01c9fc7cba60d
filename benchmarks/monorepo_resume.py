"""Interrupt and resume a cold load of the monorepo corpus; check it ends equal to an uninterrupted one.

Usage: ``python benchmarks/monorepo_resume.py --reference DIR [--kills 15,120]``

``--reference`` is an index cache directory that holds a complete, uninterrupted
load of the corpus (``monorepo_bench.py --index-cache DIR`` leaves one). A cold
load into a fresh cache is killed with SIGKILL after each of ``--kills``
seconds (the first in the texts pass, the second in the symbols pass), each
time started again on the same cache; the last load runs to the end. Then the
two caches are compared table by table: files (path, size, hash), skipped
files, definitions, references and ranked-search rows, each as a digest of its
sorted rows, plus the trigram index's candidates for a few literals.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monorepo_corpus import CACHE, build  # noqa: E402

LOADER = """
import sys, time, json
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
if __name__ == "__main__":
    t0 = time.perf_counter()
    repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), watch=False))
    print(json.dumps({"seconds": time.perf_counter() - t0, "parsed": repo.report.parsed,
                      "reused": repo.report.reused, "files": repo.report.files}))
    repo.close()
"""
TABLES = {
    "files": "SELECT path, size, hash, language, lines, tokens, invalid_utf8, parsed FROM files",
    "skipped": "SELECT path, reason FROM skipped",
    "defs": "SELECT name, qualname, kind, path, start_line, end_line, signature, doc FROM defs",
    "refs": "SELECT name, path, line, kind FROM refs",
    "docs": "SELECT path, start_line, end_line, qualname, kind FROM docs",
}
LITERALS = ("spin_lock_irqsave", "QuerySet", "fn into_iter", "ServeHTTP", "parseInt(")


def digest(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out: dict[str, object] = {}
    for name, sql in TABLES.items():
        h = hashlib.sha256()
        n = 0
        for row in conn.execute(
            sql + " ORDER BY " + ", ".join(f"{i + 1}" for i in range(len(sql.split(","))))
        ):
            h.update(repr(row).encode())
            n += 1
        out[name] = (n, h.hexdigest()[:16])
    conn.close()
    from rlm_mcp.index.store.sqlite import SQLiteStore

    store = SQLiteStore(db)
    try:
        out["trigram"] = {lit: len(store.grep_candidates([[lit]]) or ()) for lit in LITERALS}
        out["text_index"] = store.text_index_progress()
        out["unparsed"] = len(store.unparsed_paths())
    finally:
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--kills", default="15,120")
    args = ap.parse_args()
    tree = build(CACHE)
    cache = Path(tempfile.mkdtemp(prefix="rlm-resume-"))
    runs = []
    for after in [float(x) for x in args.kills.split(",") if x]:
        proc = subprocess.Popen(
            [sys.executable, "-c", LOADER, str(tree), str(cache)], cwd=str(ROOT)
        )
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < after:
            time.sleep(0.2)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            runs.append({"killed_after_s": after})
        else:
            runs.append({"finished_before_kill_s": after})
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(tree), str(cache)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        check=True,
    )
    runs.append({"final": json.loads(done.stdout.strip().splitlines()[-1])})
    (db,) = list(cache.glob("*.sqlite"))
    (ref,) = list(args.reference.glob("*.sqlite"))
    ours, theirs = digest(db), digest(ref)
    same = {k: ours[k] == theirs[k] for k in ours}
    print(json.dumps({"runs": runs, "resumed": ours, "reference": theirs, "equal": same}, indent=1))
    print(
        f"resumed load equal to the uninterrupted one: {all(same.values())} {same}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
