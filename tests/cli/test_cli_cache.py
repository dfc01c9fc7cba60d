"""``rlm-mcp cache list`` and ``cache prune``: what the caches hold, and removing dead ones."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from tests.cli.cli_helpers import SAMPLE, run_cli, write_tree

DAY = 86_400


def _caches(env: dict[str, str]) -> list[dict[str, object]]:
    proc = run_cli("cache", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    caches: list[dict[str, object]] = json.loads(proc.stdout)["caches"]
    return caches


def _age(db: Path, days: float) -> None:
    """Make a cache look last used ``days`` ago."""
    then = time.time() - days * DAY
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            os.utime(p, (then, then))


def test_cache_list_shows_each_root_its_size_and_when_it_was_last_used(
    tmp_path: Path, env: dict[str, str]
) -> None:
    one = write_tree(tmp_path / "one", SAMPLE)
    two = write_tree(tmp_path / "two", {"main.go": "package main\n"})
    assert run_cli("index", str(one), env=env).returncode == 0
    assert run_cli("search", str(two), "main", env=env).returncode == 0
    caches = _caches(env)
    assert sorted(c["root"] for c in caches) == [str(one), str(two)]  # type: ignore[type-var]
    for c in caches:
        assert c["root_exists"] is True
        assert isinstance(c["bytes"], int) and c["bytes"] > 0
        assert str(c["file"]).startswith(env["RLM_CACHE_DIR"])
        assert str(c["last_used"]).endswith("Z")
    text = run_cli("cache", "list", env=env)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].split() == ["SIZE", "LAST", "USED", "ROOT"]
    assert any(line.endswith(f"  {one}") for line in text.stdout.splitlines())
    assert "2 caches, " in text.stdout and f" in {env['RLM_CACHE_DIR']}" in text.stdout


def test_listing_a_cache_is_not_using_it(tmp_path: Path, env: dict[str, str]) -> None:
    repo = write_tree(tmp_path / "repo", SAMPLE)
    run_cli("index", str(repo), env=env)
    (db,) = Path(env["RLM_CACHE_DIR"]).glob("*.sqlite")
    _age(db, 40)
    before = _caches(env)[0]["last_used"]
    assert _caches(env)[0]["last_used"] == before
    assert time.time() - db.stat().st_mtime > 39 * DAY


def test_prune_removes_the_caches_of_deleted_repositories_and_keeps_the_rest(
    tmp_path: Path, env: dict[str, str]
) -> None:
    kept = write_tree(tmp_path / "kept", SAMPLE)
    gone = write_tree(tmp_path / "gone", SAMPLE)
    for repo in (kept, gone):
        assert run_cli("index", str(repo), env=env).returncode == 0
    shutil.rmtree(gone)
    listed = run_cli("cache", "list", env=env).stdout
    assert f"{gone}  (missing)" in listed

    dry = run_cli("cache", "prune", "--dry-run", env=env)
    assert dry.returncode == 0
    assert "would remove gone-" in dry.stdout and f"its root {gone} no longer exists" in dry.stdout
    assert len(_caches(env)) == 2

    proc = run_cli("cache", "prune", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 cache;" in proc.stdout
    assert [c["root"] for c in _caches(env)] == [str(kept)]
    left = [p.name for p in Path(env["RLM_CACHE_DIR"]).iterdir()]
    assert left and all(name.startswith("kept-") for name in left), left


def test_prune_older_than_removes_caches_unused_for_that_many_days(
    tmp_path: Path, env: dict[str, str]
) -> None:
    old = write_tree(tmp_path / "old", SAMPLE)
    new = write_tree(tmp_path / "new", SAMPLE)
    for repo in (old, new):
        run_cli("index", str(repo), env=env)
    (db,) = Path(env["RLM_CACHE_DIR"]).glob("old-*.sqlite")
    _age(db, 45)
    proc = run_cli("cache", "prune", "--older-than", "30", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "unused for 45 days" in proc.stdout
    assert [c["root"] for c in _caches(env)] == [str(new)]


def test_prune_keeps_a_cache_that_a_writer_holds(tmp_path: Path, env: dict[str, str]) -> None:
    repo = write_tree(tmp_path / "busy", SAMPLE)
    run_cli("index", str(repo), env=env)
    (db,) = Path(env["RLM_CACHE_DIR"]).glob("busy-*.sqlite")
    _age(db, 90)
    fd = os.open(str(db) + ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = run_cli("cache", "prune", "--older-than", "1", env=env)
    finally:
        os.close(fd)
    assert proc.returncode == 0
    assert f"kept {db.name} ({repo}): in use" in proc.stderr
    assert db.exists()


def test_prune_removes_trajectories_older_than_the_retention_period(
    tmp_path: Path, env: dict[str, str]
) -> None:
    trajectories = Path(env["RLM_TRAJECTORY_DIR"])
    trajectories.mkdir(parents=True)
    old, recent = trajectories / "20200101T000000-old.jsonl", trajectories / "recent.jsonl"
    for path in (old, recent):
        path.write_text('{"event": "start"}\n')
    then = time.time() - 31 * DAY
    os.utime(old, (then, then))

    kept = run_cli("cache", "prune", env=dict(env, RLM_TRAJECTORY_RETENTION_DAYS="0"))
    assert kept.returncode == 0 and old.exists(), "0 keeps trajectories forever"
    assert run_cli("cache", "prune", "--trajectory-retention-days", "40", env=env).returncode == 0
    assert old.exists()

    proc = run_cli("cache", "prune", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 trajectories older than 30 days" in proc.stdout
    assert not old.exists() and recent.exists()


def test_a_negative_retention_is_a_configuration_error(env: dict[str, str]) -> None:
    proc = run_cli("cache", "prune", env=dict(env, RLM_TRAJECTORY_RETENTION_DAYS="-1"))
    assert proc.returncode == 2
    assert "trajectory_retention_days must be 0 or more, got -1" in proc.stderr
