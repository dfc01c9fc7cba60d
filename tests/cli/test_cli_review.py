"""review: a real git repository with a change, the scripted model's findings printed as path:line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import code, run_cli

from rlm_mcp.backends.testing import LoopbackLLMServer
from rlm_mcp.review import Finding, parse_findings


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def changed_repo(repo: Path) -> Path:
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    ops = repo / "calc" / "ops.py"
    ops.write_text(ops.read_text().replace("return a / b", "return a // b if b else 0"))
    (repo / "calc" / "mul.py").write_text("def mul(a, b):\n    return a * b\n")
    return repo


def _reply(findings: str) -> Any:
    def root(body: dict[str, Any]) -> str:
        return code(f"FINAL({findings!r})")

    return root


def test_review_prints_findings_as_path_line_and_exits_1_on_errors(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = _reply(
        "calc/ops.py:3: error: integer division changes the result for floats\n"
        "calc/mul.py:1: warning: mul has no tests"
    )
    proc = run_cli("review", "--repo", str(changed_repo), env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        "calc/ops.py:3: error: integer division changes the result for floats",
        "calc/mul.py:1: warning: mul has no tests",
    ]
    question = json.dumps(llm.requests[0].json["messages"])
    assert "<<<UNTRUSTED diff" in question
    assert "return a // b if b else 0" in question
    assert "def mul(a, b)" in question, "untracked files are part of the diff"
    assert "path:line: severity: message" in question


def test_review_json_gives_structured_findings_and_the_raw_answer(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    answer = "calc/mul.py:2: info: consider type hints"
    llm.responder = _reply(answer)
    proc = run_cli("review", "--repo", str(changed_repo), "--base", "HEAD", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["base"] == "HEAD"
    assert out["findings"] == [
        {"path": "calc/mul.py", "line": 2, "severity": "info", "message": "consider type hints"}
    ]
    assert out["answer"] == answer
    assert out["status"] == "completed"


def test_review_without_changes_exits_0_without_calling_the_model(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    proc = run_cli("review", "--repo", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no changes" in proc.stderr
    assert llm.requests == []


def test_review_outside_a_git_repository_fails_with_exit_3(
    tmp_path: Path, env: dict[str, str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = run_cli("review", "--repo", str(plain), env=env)
    assert proc.returncode == 3
    assert "not inside a git work tree" in proc.stderr


def test_review_with_an_unknown_base_is_a_usage_error(
    changed_repo: Path, env: dict[str, str]
) -> None:
    proc = run_cli("review", "--repo", str(changed_repo), "--base", "no-such-ref", env=env)
    assert proc.returncode == 2
    assert "unknown base revision 'no-such-ref'" in proc.stderr


def test_findings_parser_accepts_common_decorations_and_ignores_prose() -> None:
    answer = (
        "Here is what I found:\n"
        "- `src/a.py:10`: **error**: off by one\n"
        "2. ./b/c.ts:7:3: Warning: unused variable\n"
        "lib/x.rs:1: note: fine\n"
        "NO FINDINGS elsewhere\n"
        "src/a.py: error: no line number\n"
    )
    assert parse_findings(answer) == [
        Finding("src/a.py", 10, "error", "off by one"),
        Finding("b/c.ts", 7, "warning", "unused variable"),
        Finding("lib/x.rs", 1, "info", "fine"),
    ]
