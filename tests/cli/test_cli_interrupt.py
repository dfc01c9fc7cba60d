"""Ctrl-C during a big `index` ends it promptly and cleanly: exit 130, no helpers left."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlm_mcp.index.store.sqlite import db_path_for
from tests.cli.cli_helpers import isolated_env
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: int = 700) -> Path:
    for i in range(files):
        d = root / f"pkg{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"m{i}.py").write_text(
            "".join(f"def f{i}_{j}(x):\n    return g(x) + {j}\n\n" for j in range(40))
        )
    return root


def _group(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out


def _has_rows(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return bool(conn.execute("SELECT count(*) FROM files").fetchone()[0] > 0)
    except sqlite3.Error:
        return False


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_index_exits_130_and_leaves_no_processes(
    tmp_path: Path, presses: int
) -> None:
    src = _tree(tmp_path / "src")
    env = isolated_env(tmp_path)
    db = db_path_for(Path(env["RLM_CACHE_DIR"]), src.resolve())
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", "index", str(src)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Until the first rows are written (or the run ends); then interrupt it either way.
        poll(lambda: proc.poll() is not None or _has_rows(db), 60, interval=0.02)
        assert proc.poll() is None, "the index finished before it could be interrupted"
        for _ in range(presses):
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        poll(lambda: not _group(proc.pid), 15, interval=0.05)
        assert _group(proc.pid) == []
    finally:
        # A hung run must not outlive the test (its pipes would be collected in another test).
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
