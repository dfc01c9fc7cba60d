"""SQLite and PostgreSQL give identical answers on the same corpus.

One corpus (every language fixture plus a copy of the index package's own
source) is loaded into both stores through ``load(path, store=...)``; grep,
symbols, references, callers, outline, the repo map and ranked search (with
scores) must agree exactly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.index.store.postgres.store import PostgresStore
from rlm_mcp.index.store.sqlite import SQLiteStore
from tests.pg_cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]

GREPS = [
    ("def ", {}),
    (r"class\s+\w+", {}),
    ("import", {"glob": "**/*.py"}),
    ("TODO|FIXME|XXX", {"ignore_case": True}),
    ("store", {"fixed": True, "context": 1}),
    ("return", {"max_results": 7, "offset": 3}),
]
SYMBOLS = [
    ("load", {}),
    ("Store", {"match": "substring"}),
    ("^_", {"match": "regex", "limit": 40}),
    ("parse", {"match": "prefix"}),
    ("main", {"kind": "function"}),
    ("*", {"path_glob": "rlm_mcp_index/*.py", "limit": 30}),
]
QUERIES = [
    "load the index from disk",
    "parse http header",
    "where are definitions stored",
    "grep helper process killed at timeout",
    "rank words bm25",
    "greet user hello",
    "walk the directory tree and skip binary files",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(ROOT / "tests" / "fixtures" / "languages", root / "languages")
    shutil.copytree(
        ROOT / "rlm_mcp" / "index",
        root / "rlm_mcp_index",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


@pytest.fixture(scope="module")
def pair(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, pg_cluster: Cluster
) -> Iterator[tuple[Repository, Repository]]:
    settings = IndexSettings(cache_dir=tmp_path_factory.mktemp("cache"), workers=1, watch=False)
    pg_store = PostgresStore(pg_cluster.url, f"parity:{corpus}")
    lite = load(corpus, settings, store=SQLiteStore(tmp_path_factory.mktemp("db") / "i.sqlite"))
    pg = load(corpus, settings, store=pg_store)
    try:
        yield lite, pg
    finally:
        lite.close()
        pg.close()


def test_both_stores_index_the_same_files_and_symbols(pair: tuple[Repository, Repository]) -> None:
    lite, pg = pair
    assert lite.report.files == pg.report.files > 20
    assert lite.report.symbols == pg.report.symbols > 100
    assert lite.entries() == pg.entries()


def test_grep_gives_the_same_hits(pair: tuple[Repository, Repository]) -> None:
    lite, pg = pair
    for pattern, kw in GREPS:
        assert lite.grep(pattern, **kw) == pg.grep(pattern, **kw), pattern  # type: ignore[arg-type]


def test_symbols_references_callers_and_outlines_agree(
    pair: tuple[Repository, Repository],
) -> None:
    lite, pg = pair
    for query, kw in SYMBOLS:
        assert lite.symbols(query, **kw) == pg.symbols(query, **kw), query  # type: ignore[arg-type]
    names = sorted({d.name for d in lite.symbols("*", limit=10_000)})
    for name in names[::7]:
        assert lite.definition(name) == pg.definition(name), name
        assert lite.references(name) == pg.references(name), name
        assert lite.callers(name) == pg.callers(name), name
    for path in lite.files():
        assert lite.outline(path) == pg.outline(path), path
        assert lite.enclosing(path, 5) == pg.enclosing(path, 5), path


def test_the_repo_map_is_the_same(pair: tuple[Repository, Repository]) -> None:
    lite, pg = pair
    assert lite.repo_map(2048) == pg.repo_map(2048)
    assert lite.repo_map(1024, focus="rlm_mcp_index/store.py") == pg.repo_map(
        1024, focus="rlm_mcp_index/store.py"
    )


def test_ranked_search_gives_the_same_hits_and_scores(pair: tuple[Repository, Repository]) -> None:
    lite, pg = pair
    for q in QUERIES:
        assert lite.search(q, 15) == pg.search(q, 15), q
        assert lite.search(q, 5, glob="languages/**") == pg.search(q, 5, glob="languages/**"), q
    raw = ["store", "load", "index", "file", "def"]
    a = lite.store.text_search(raw, 200)
    b = pg.store.text_search(raw, 200)
    assert a == b
    assert len(a) == 200
