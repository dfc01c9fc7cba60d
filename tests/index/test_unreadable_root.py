"""A root that cannot be listed is an error naming it, never an empty index.

The tests run as root, whom permission bits do not stop, so the load runs in
a child process as ``nobody`` (``setpriv``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

NOBODY = 65534
SETPRIV = shutil.which("setpriv")
REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() == 0 and SETPRIV is None,
    reason="as root without setpriv, permission bits cannot make a directory unreadable",
)


@functools.cache
def _nobody_can_import() -> bool:
    """As root, the tests run Python as ``nobody``: the checkout must be readable to it."""
    if os.geteuid() != 0:
        return True
    assert SETPRIV is not None
    probe = subprocess.run(
        [
            SETPRIV,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            "import rlm_mcp.index",
        ],
        capture_output=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT)},
        cwd="/",
        timeout=120,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def place() -> Iterator[Path]:
    """A world-traversable directory (pytest's tmp_path is private to root)."""
    if not _nobody_can_import():
        pytest.skip("the checkout or its venv is not readable by an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="rlm-unreadable-"))
    base.chmod(0o755)
    cache = base / "cache"
    cache.mkdir()
    if os.geteuid() == 0:
        os.chown(cache, NOBODY, NOBODY)
    try:
        yield base
    finally:
        for p in base.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base)


def _run(code_or_args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:
        assert SETPRIV is not None
        prefix = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cache),
        "XDG_CACHE_HOME": str(cache),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [*prefix, sys.executable, *code_or_args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cache,
        timeout=120,
        check=False,
    )


LOAD = """
import sys
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import RepositoryNotFound
from rlm_mcp.index import load
try:
    repo = load(sys.argv[1], IndexSettings(cache_dir=Path(sys.argv[2]), watch=False))
except RepositoryNotFound as exc:
    print("ERROR", exc)
else:
    print("LOADED", repo.files(), sorted((s.path, s.reason) for s in repo.report.skipped))
    repo.close()
"""


def test_loading_a_root_that_cannot_be_listed_raises_naming_it(place: Path) -> None:
    secret = place / "secret"
    secret.mkdir()
    (secret / "a.py").write_text("x = 1\n")
    secret.chmod(0)
    got = _run(["-c", LOAD, str(secret), str(place / "cache")], place / "cache")
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("ERROR"), got.stdout
    assert str(secret) in got.stdout
    assert "Permission denied" in got.stdout


def test_the_cli_index_command_fails_on_a_root_that_cannot_be_listed(place: Path) -> None:
    secret = place / "secret"
    secret.mkdir()
    secret.chmod(0)
    got = _run(["-m", "rlm_mcp", "index", str(secret)], place / "cache")
    assert got.returncode != 0, got.stdout + got.stderr
    assert str(secret) in got.stderr
    assert "Permission denied" in got.stderr


def test_unreadable_entries_inside_a_readable_root_stay_skipped(place: Path) -> None:
    root = place / "repo"
    root.mkdir()
    root.chmod(0o755)
    (root / "a.py").write_text("x = 1\n")
    (root / "a.py").chmod(0o644)
    (root / "locked.py").write_text("y = 2\n")
    (root / "locked.py").chmod(0)
    (root / "private").mkdir()
    (root / "private" / "b.py").write_text("z = 3\n")
    (root / "private").chmod(0)
    got = _run(["-c", LOAD, str(root), str(place / "cache")], place / "cache")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == (
        "LOADED ['a.py'] [('locked.py', 'unreadable'), ('private', 'unreadable')]"
    ), got.stdout


APPLY = """
import os, sys
from pathlib import Path
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
root = Path(sys.argv[1])
with load(root, IndexSettings(cache_dir=Path(sys.argv[2]), watch=False)) as repo:
    (root / "new").mkdir()
    (root / "new" / "c.py").write_text("w = 4\\n")
    (root / "new").chmod(0)
    repo.apply_changes({"new"}, set())
    print(repo.files(), sorted((s.path, s.reason) for s in repo.report.skipped))
    (root / "new").chmod(0o755)
"""


def test_a_new_directory_that_cannot_be_listed_is_recorded_by_an_update(place: Path) -> None:
    root = place / "repo"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    if os.geteuid() == 0:
        os.chown(root, NOBODY, NOBODY)
        os.chown(root / "a.py", NOBODY, NOBODY)
    got = _run(["-c", APPLY, str(root), str(place / "cache")], place / "cache")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "['a.py'] [('new', 'unreadable')]", got.stdout
