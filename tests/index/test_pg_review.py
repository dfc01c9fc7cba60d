"""rlm-mcp review on a shared index: an overlay on the indexed commit holds only the diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from rlm_mcp.testing import LoopbackLLMServer
from tests.cli.cli_helpers import SAMPLE, code, isolated_env, run_cli, write_tree
from tests.index.index_helpers import GIT_ENV, git
from tests.pg_cluster import shared


def test_a_review_indexes_only_the_changed_files_over_the_indexed_commit(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    repo = write_tree(tmp_path / "calc-repo", SAMPLE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    url = shared().url
    env = {
        **isolated_env(tmp_path, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model"),
        **GIT_ENV,
        "RLM_INDEX_URL": url,
    }
    indexed = run_cli("index", str(repo), "--commit", "--json", env=env)
    assert indexed.returncode == 0, indexed.stderr
    sha = json.loads(indexed.stdout)["commit"]

    ops = repo / "calc" / "ops.py"
    ops.write_text(ops.read_text().replace("return a / b", "return a // b if b else 0"))
    (repo / "calc" / "mul.py").write_text("def mul(a, b):\n    return a * b\n")

    def root(body: dict[str, Any]) -> str:
        return code('FINAL("NO FINDINGS")')

    llm.responder = root
    review = run_cli("review", "--repo", str(repo), "--base", "HEAD", env=env)
    assert review.returncode == 0, review.stderr

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT r.identity, b.identity, (SELECT count(*) FROM rlm_files f "
            "WHERE f.repo_id = r.repo_id) FROM rlm_repos r JOIN rlm_repos b "
            "ON b.repo_id = r.base_id WHERE r.identity LIKE %s",
            (f"file://{repo.resolve()}@{sha}+%",),
        ).fetchall()
    assert len(rows) == 1, rows
    _overlay, base, own_files = rows[0]
    assert base == f"file://{repo.resolve()}@{sha}"
    assert own_files == 2, "the overlay stores the two changed files, nothing else"
