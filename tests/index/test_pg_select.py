"""Choosing the PostgreSQL store: RLM_INDEX_URL / index_url / --index-url, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import ConfigError, IndexUnavailable
from rlm_mcp.index.repository import load
from rlm_mcp.index.store.open import open_store, repo_identity
from rlm_mcp.index.store.postgres.store import PostgresStore
from rlm_mcp.index.store.sqlite import SQLiteStore
from rlm_mcp.settings_loader import load_config
from tests.cli.cli_helpers import SAMPLE, isolated_env, run_cli, write_tree
from tests.pg_cluster import shared


def test_the_url_comes_from_the_flag_the_variable_or_the_file(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "RLM_INDEX_URL": "postgresql://a@db/rlm"}
    assert load_config({}, env).settings.index.index_url == "postgresql://a@db/rlm"
    flagged = load_config({"index_url": "postgres://b@db/rlm"}, env)
    assert flagged.settings.index.index_url == "postgres://b@db/rlm"
    conf = tmp_path / "c.toml"
    conf.write_text('index_url = "postgresql://c@db/rlm"\n')
    from_file = load_config({}, {"HOME": str(tmp_path)}, conf)
    assert from_file.settings.index.index_url == "postgresql://c@db/rlm"
    assert load_config({}, {"HOME": str(tmp_path)}).settings.index.index_url is None


def test_a_url_that_is_not_postgresql_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        load_config({}, {"HOME": str(tmp_path), "RLM_INDEX_URL": "mysql://db/x"})


def test_the_password_never_shows_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(IndexSettings(index_url="postgresql://u:s3cret@db/x"))


def test_open_store_chooses_by_url(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "r", SAMPLE)
    lite = open_store(IndexSettings(cache_dir=tmp_path / "cache"), repo)
    assert isinstance(lite, SQLiteStore)
    lite.close()
    pg = open_store(IndexSettings(index_url=shared().url), repo, commit="abc123")
    assert isinstance(pg, PostgresStore)
    assert pg.identity == repo_identity(repo, "abc123") == f"file://{repo.resolve()}@abc123"
    pg.close()


def test_the_identity_is_the_remote_not_the_local_path(tmp_path: Path) -> None:
    import subprocess

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write_tree(d, SAMPLE)
        subprocess.run(["git", "init", "-q", str(d)], check=True)
        subprocess.run(
            ["git", "-C", str(d), "remote", "add", "origin", "https://tok:x@git.example/team/calc"],
            check=True,
        )
    assert repo_identity(a) == repo_identity(b) == "https://git.example/team/calc"
    assert repo_identity(a / "calc") == "https://git.example/team/calc#/calc"


def test_a_second_process_reads_the_index_without_parsing(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "r", SAMPLE)
    settings = IndexSettings(index_url=shared().url, workers=1, watch=False)
    first = load(repo, settings)
    assert first.report.parsed == 3
    first.close()
    second = load(repo, settings)
    try:
        assert (second.report.parsed, second.report.reused) == (0, 3)
        assert [d.name for d in second.symbols("divide")] == ["divide"]
        assert second.grep("return a") and second.search("divide numbers")
    finally:
        second.close()


def test_the_public_load_writes_the_index_to_postgresql(tmp_path: Path) -> None:
    """``rlm_mcp.load`` honours ``index_url`` (it used to write a SQLite cache regardless)."""
    import rlm_mcp

    repo = write_tree(tmp_path / "r", SAMPLE)
    cache = tmp_path / "cache"
    url = shared().url
    settings = IndexSettings(index_url=url, cache_dir=cache, workers=1, watch=False)
    with rlm_mcp.load(repo, settings) as loaded:
        assert isinstance(loaded.store, PostgresStore)
        assert loaded.store.identity == repo_identity(repo)
        assert loaded.report.parsed == 3
    assert not any(cache.glob("*.sqlite*")), "no SQLite cache when a URL is set"
    stored = PostgresStore(url, repo_identity(repo))
    try:
        assert set(stored.file_rows()) == set(SAMPLE)
    finally:
        stored.close()


def test_the_cli_indexes_into_postgresql_and_reuses_it(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "r", SAMPLE)
    env = isolated_env(tmp_path)
    url = shared().url
    out = run_cli("index", str(repo), "--index-url", url, "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["parsed"] == 3
    again = run_cli("index", str(repo), "--json", env={**env, "RLM_INDEX_URL": url})
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["parsed"], json.loads(again.stdout)["reused"]) == (0, 3)
    assert not any((tmp_path / "cache").glob("*.sqlite")), "no SQLite cache when a URL is set"


def test_an_unreachable_database_stops_the_cli_with_one_line(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "r", SAMPLE)
    url = f"postgresql://rlm:hunter2@/postgres?host={tmp_path}&connect_timeout=2"
    out = run_cli("index", str(repo), "--index-url", url, env=isolated_env(tmp_path))
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "cannot reach the index database" in lines[0]
    assert "hunter2" not in out.stderr
    assert "Traceback" not in out.stderr


def test_opening_an_unreachable_database_raises_index_unavailable(tmp_path: Path) -> None:
    settings = IndexSettings(index_url=f"postgresql://rlm@/postgres?host={tmp_path}")
    with pytest.raises(IndexUnavailable):
        open_store(settings, tmp_path)
