"""Ranked search: BM25 over name words, path words and docs, with a bonus for named identifiers."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.errors import SearchError
from rlm_mcp.index import Repository
from rlm_mcp.index.search.ranked import SearchHit
from rlm_mcp.index.search.ranking import query_terms, words
from rlm_mcp.index.store.sqlite import ranked as store_module
from tests.index.index_helpers import write

ROTATION = '''"""Log file housekeeping."""

import os


def _rotate_log_segments(directory, max_bytes):
    """Move old log files aside when they grow past the size limit."""
    for name in sorted(os.listdir(directory)):
        # rename to a numbered suffix and start a fresh segment
        pass


def open_current(directory):
    """Open the current segment for appending."""
    return open(os.path.join(directory, "current"), "a")
'''

HTTP = '''"""Wire helpers."""


def parse_http_header(line):
    """Split one raw header line into a name and a value."""
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


class Connection:
    """A keep-alive connection to a server."""

    def send(self, data):
        return len(data)
'''

CACHE = '''"""A small in-memory store of computed values."""


def evict_stale_entries(table, now):
    """Drop entries whose time to live has passed."""
    return {k: v for k, v in table.items() if v[1] > now}


def table_size(table):
    return len(table)
'''

CLI = '''from app.net.wire import parse_http_header


def main(argv):
    """Entry point: read the arguments and run."""
    print(parse_http_header(argv[0]))
'''

CONFIG = '''"""Settings."""


def load_config(path):
    """Read the settings file."""
    return {}


def load_config_file_from_disk(path):
    """Load config from disk: load the config file and parse the config values."""
    return load_config(path)


class ConfigLoader:
    """Loads config; config loading, config parsing, config everything."""

    def load(self, path):
        """Load config."""
        return load_config(path)
'''

FILES: dict[str, str | bytes] = {
    "app/logs/rotation.py": ROTATION,
    "app/net/wire.py": HTTP,
    "app/storage/memo.py": CACHE,
    "app/cli.py": CLI,
    "app/settings/config.py": CONFIG,
    "docs/guide.md": "# Guide\n\nRun the tool with a path.\n",
}


@pytest.fixture
def repo(tmp_path: Path, loader: Callable[..., Repository]) -> Repository:
    write(tmp_path, FILES)
    return loader(tmp_path)


def _where(hits: list[SearchHit]) -> list[tuple[str, str]]:
    return [(h.path, h.qualname) for h in hits]


def test_identifiers_split_into_the_words_people_say() -> None:
    assert words("parseHTTPResponse") == ["parse", "http", "response"]
    assert words("parse_http_response") == ["parse", "http", "response"]
    assert words("app/net/wire.py") == ["app", "net", "wire", "py"]
    assert query_terms("Where do we parse the HTTP response?") == ["parse", "http", "response"]


def test_a_paraphrase_of_a_docstring_finds_the_definition_without_its_name(
    repo: Repository,
) -> None:
    question = "where do we move old logs when they get too big"
    assert not {"rotate", "segments"} & set(words(question))
    hits = repo.search(question)
    top3 = _where(hits[:3])
    assert ("app/logs/rotation.py", "_rotate_log_segments") in top3, hits


def test_a_camel_case_query_finds_the_snake_case_definition(repo: Repository) -> None:
    hits = repo.search("parseHttpHeader")
    assert hits, "no hits"
    best = hits[0]
    assert (best.path, best.qualname, best.kind) == (
        "app/net/wire.py",
        "parse_http_header",
        "function",
    )
    assert (best.line, best.end_line) == (4, 7)
    assert "parse_http_header(line)" in best.snippet


def test_an_identifier_in_the_query_ranks_its_exact_definition_first(repo: Repository) -> None:
    hits = repo.search("what does load_config do with the config file")
    assert hits[0].qualname == "load_config", _where(hits)
    assert hits[0].score > hits[1].score
    wordy = {"load_config_file_from_disk", "ConfigLoader", "ConfigLoader.load"}
    assert wordy <= {h.qualname for h in hits[1:]}


def test_a_dotted_identifier_ranks_the_method_first(repo: Repository) -> None:
    hits = repo.search("how does ConfigLoader.load work")
    assert (hits[0].qualname, hits[0].kind) == ("ConfigLoader.load", "method"), _where(hits)


def test_hits_come_best_first_with_scores_that_never_increase(repo: Repository) -> None:
    hits = repo.search("config", limit=3)
    assert len(hits) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True), _where(hits)


def test_whole_files_are_hits_with_an_empty_qualname_and_definitions_print_their_range(
    repo: Repository,
) -> None:
    everything = repo.search("config settings load", limit=50)
    files = [h for h in everything if h.kind == "file"]
    assert files and all(h.qualname == "" and h.line == 1 for h in files)
    assert "app/settings/config.py" in {h.path for h in files}
    text = str(next(h for h in everything if h.qualname == "load_config"))
    assert text.startswith("app/settings/config.py:4-6: function load_config: ")


def test_a_glob_narrows_the_results(repo: Repository) -> None:
    everywhere = repo.search("parse_http_header")
    assert everywhere[0].path == "app/net/wire.py"
    narrowed = repo.search("parse_http_header", glob="app/settings/**")
    assert all(h.path == "app/settings/config.py" for h in narrowed)
    by_dir = repo.search("load config", glob="app/settings")
    assert by_dir and {h.path for h in by_dir} == {"app/settings/config.py"}
    assert {h.path for h in repo.search("time to live", glob="*.py")} == {"app/storage/memo.py"}
    assert repo.search("time to live", glob="docs/**") == []


def test_a_glob_still_finds_matches_when_many_better_ones_lie_outside_it(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    noisy = {
        f"vendor/retry{i}.py": (
            f'def retry_backoff_{i}(attempt):\n    """Retry with backoff, retry again."""\n'
            "    return attempt\n"
        )
        for i in range(120)
    }
    write(
        tmp_path,
        {
            **noisy,
            "core/client.py": (
                'def send_request(req):\n    """Send it; on failure we retry once."""\n'
                "    return req\n"
            ),
        },
    )
    repo = loader(tmp_path)
    hits = repo.search("retry", glob="core/**")
    assert _where(hits)[:1] == [("core/client.py", "send_request")], hits


def test_results_follow_an_edited_file_and_a_deleted_one(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, FILES)
    repo = loader(tmp_path)
    assert "evict_stale_entries" in {h.qualname for h in repo.search("time to live")}

    write(
        tmp_path,
        {
            "app/storage/memo.py": (
                'def purge_expired_rows(table, now):\n    """Forget rows past their expiry."""\n'
                "    return table\n"
            )
        },
    )
    repo.apply_changes({"app/storage/memo.py"}, set())
    after = repo.search("forget rows past their expiry")
    assert _where(after)[0] == ("app/storage/memo.py", "purge_expired_rows"), after
    assert "evict_stale_entries" not in {h.qualname for h in repo.search("time to live")}
    assert "evict_stale_entries" not in {h.qualname for h in repo.search("evict_stale_entries")}

    (tmp_path / "app/net/wire.py").unlink()
    repo.apply_changes(set(), {"app/net/wire.py"})
    assert all(h.path != "app/net/wire.py" for h in repo.search("parse http header connection"))
    assert "parse_http_header" not in {h.qualname for h in repo.search("parse_http_header")}


def test_an_empty_query_raises_search_error(repo: Repository) -> None:
    for query in ("", "   ", "\n\t"):
        with pytest.raises(SearchError, match="empty"):
            repo.search(query)


def test_a_query_of_only_common_words_finds_nothing_without_failing(repo: Repository) -> None:
    assert repo.search("where is the code that does it") == []


def test_ranked_search_survives_a_reload_from_the_cache(
    tmp_path: Path, loader: Callable[..., Repository]
) -> None:
    write(tmp_path, FILES)
    first = loader(tmp_path)
    before = first.search("where do we move old logs when they get too big")
    first.close()
    again = loader(tmp_path)
    assert again.report.parsed == 0 and again.report.reused == len(FILES)
    assert again.search("where do we move old logs when they get too big") == before
    assert again.search("parseHttpHeader")[0].qualname == "parse_http_header"


def _one_query(
    db: Path, terms: list[str], limit: int, path_regex: str | None = None
) -> list[tuple[str, int, str, float]]:
    """What a single FTS5 query scoring every matching row ranks: the reference for pruning."""
    conn = sqlite3.connect(db)
    conn.create_function("rematch", 2, lambda p, v: re.match(p, v) is not None)
    match = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
    where, args = "fts MATCH ?", [match]
    if path_regex is not None:
        where += " AND rematch(?, f.path)"
        args.append(path_regex)
    rows = conn.execute(
        "SELECT f.path, coalesce(d.start_line, 1), coalesce(d.qualname, ''), "
        "-bm25(fts, 8.0, 2.0, 1.0) AS s FROM fts JOIN files f ON f.id = fts.rowid >> 20 "
        f"LEFT JOIN defs d ON d.id = fts.rowid WHERE {where} ORDER BY s DESC, fts.rowid LIMIT ?",
        (*args, limit),
    ).fetchall()
    conn.close()
    return rows


@pytest.fixture
def skewed(tmp_path: Path, loader: Callable[..., Repository]) -> Repository:
    """Many rows hold one common word, few hold several: the passes skip most of them."""
    files: dict[str, str | bytes] = {}
    for i in range(60):
        words_ = ["buffer", "read", "write", "buffer read", "zip entry"][i % 5]
        files[f"pkg/m{i}.py"] = (
            f'def handle_{i}(x):\n    """Handle the {words_} case number {i}."""\n    return x\n\n\n'
            f'def {words_.replace(" ", "_")}_{i}(y):\n    """Do {words_} with {i % 7} extra {words_}."""\n'
            "    return y\n"
        )
    files["pkg/archive.py"] = (
        'def read_zip_archive_entry(archive, name):\n    """Read one zip entry."""\n    return name\n'
    )
    write(tmp_path, files)
    return loader(tmp_path)


@pytest.mark.parametrize("limit", [1, 3, 10, 200])
def test_pruned_ranked_text_search_equals_scoring_every_row(skewed: Repository, limit: int) -> None:
    store = skewed.store
    db = Path(store.location)
    for terms in (
        ["read", "zip", "archive", "entry"],
        ["buffer", "read", "write"],
        ["write", "buffer"],
        ["handle", "buffer", "case", "number", "extra", "zip"],
        ["buffer"],
        ["nothing", "zip"],
        ["nothing", "nowhere"],
    ):
        got = [(h.path, h.start_line, h.qualname, h.score) for h in store.text_search(terms, limit)]
        assert got == _one_query(db, terms, limit), terms
        rx = r"pkg/m1.*\Z"
        got = [
            (h.path, h.start_line, h.qualname, h.score)
            for h in store.text_search(terms, limit, path_regex=rx)
        ]
        assert got == _one_query(db, terms, limit, rx), terms


def test_ranked_text_search_past_its_pass_budget_scores_every_row(
    skewed: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_PASSES", 1)
    terms = ["handle", "buffer", "case", "number", "extra", "zip"]
    got = [(h.path, h.start_line, h.qualname, h.score) for h in skewed.store.text_search(terms, 7)]
    assert got == _one_query(Path(skewed.store.location), terms, 7)


def test_a_short_page_is_the_head_of_a_long_one(repo: Repository) -> None:
    for q in (
        "who calls parse_http_header",
        "what does load_config do with the config file",
        "config",
        "parse the http header line",
        "ConfigLoader.load",
    ):
        long = repo.search(q, 50)
        for k in (1, 2, 3, 5):
            assert repo.search(q, k) == long[:k], (q, k)


def test_a_definition_that_uses_a_named_identifier_is_a_hit(repo: Repository) -> None:
    assert ("app/cli.py", "main") in _where(repo.search("who calls parse_http_header"))
