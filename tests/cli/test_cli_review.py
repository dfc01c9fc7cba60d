"""review: a real git repository with a change, the scripted model's findings printed as path:line.

The review fails closed: every reply that is not findings or the explicit
NO FINDINGS marker, and every query that did not complete, exits non-zero.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.review import Finding, judge, parse_answer, parse_findings
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.cli.cli_helpers import code, run_cli


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
    assert "JSON array of findings" in question
    assert 'FINAL(\\"NO FINDINGS\\")' in question


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
    assert out["verdict"] == "findings"
    assert out["problem"] is None


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


ERROR_MESSAGE = "integer division changes the result for floats"
ERROR_FINDING = {"path": "calc/ops.py", "line": 3, "severity": "error", "message": ERROR_MESSAGE}
ERROR_LINE = f"calc/ops.py:3: error: {ERROR_MESSAGE}"
WARNING_LINE = "calc/mul.py:1: warning: mul has no tests"


def _final(answer: object) -> str:
    return f"FINAL({answer!r})"


FENCED = "Review done.\n```json\n" + json.dumps([ERROR_FINDING], indent=2) + "\n```"
PROSE = "I found one problem: " + json.dumps([ERROR_FINDING]) + " The rest is fine."
BULLETS = "Findings:\n- **warning** `calc/mul.py:1`: mul has no tests"


@pytest.mark.parametrize(
    ("src", "exit_code", "printed"),
    [
        pytest.param(f"FINAL(json.dumps([{ERROR_FINDING!r}]))", 1, [ERROR_LINE], id="json"),
        pytest.param(_final(FENCED), 1, [ERROR_LINE], id="fenced-json"),
        pytest.param(_final(PROSE), 1, [ERROR_LINE], id="prose-and-json"),
        pytest.param(_final([ERROR_FINDING]), 1, [ERROR_LINE], id="python-list"),
        pytest.param(_final(ERROR_LINE), 1, [ERROR_LINE], id="line-form"),
        pytest.param(_final(BULLETS), 0, [WARNING_LINE], id="bullet-list"),
        pytest.param(_final("NO FINDINGS"), 0, [], id="no-findings-marker"),
        pytest.param(_final("[]"), 0, [], id="empty-json-array"),
    ],
)
def test_review_reads_findings_in_every_shape_a_model_answers_in(
    changed_repo: Path,
    env: dict[str, str],
    llm: LoopbackLLMServer,
    src: str,
    exit_code: int,
    printed: list[str],
) -> None:
    llm.responder = lambda body: code(src)
    proc = run_cli("review", "--repo", str(changed_repo), env=env)
    assert proc.returncode == exit_code, proc.stderr
    assert proc.stdout.splitlines() == printed
    assert "review incomplete" not in proc.stderr


@pytest.mark.parametrize(
    ("src", "problem"),
    [
        pytest.param(
            'FINAL("The change looks reasonable overall.")',
            "neither findings nor the NO FINDINGS marker",
            id="garbage",
        ),
        pytest.param(
            'FINAL(json.dumps([{"path": "calc/ops.py", "message": "no line number"}]))',
            "not findings (each needs path, line and message)",
            id="finding-without-a-line",
        ),
        pytest.param('FINAL("[1, 2]")', "not findings", id="array-of-numbers"),
    ],
)
def test_review_an_answer_that_is_no_verdict_exits_4_and_says_why(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer, src: str, problem: str
) -> None:
    llm.responder = lambda body: code(src)
    proc = run_cli("review", "--repo", str(changed_repo), env=env)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == ""
    assert "rlm-mcp: error: review incomplete" in proc.stderr
    assert problem in proc.stderr
    as_json = run_cli("review", "--repo", str(changed_repo), "--json", env=env)
    assert as_json.returncode == 4
    out = json.loads(as_json.stdout)
    assert out["verdict"] == "incomplete"
    assert problem in out["problem"]
    assert out["findings"] == []


def test_review_stopped_by_a_limit_without_an_answer_exits_4(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: code('print("still reading")')
    proc = run_cli("review", "--repo", str(changed_repo), "--max-iterations", "1", env=env)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == ""
    assert "a limit stopped the review before it finished (max_iterations)" in proc.stderr


def test_review_with_a_rejected_api_key_exits_3_with_the_provider_error(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: Reply.error(401, "Incorrect API key provided")
    proc = run_cli("review", "--repo", str(changed_repo), "--json", env=env)
    assert proc.returncode == 3, proc.stderr
    assert "rlm-mcp: error: review failed" in proc.stderr
    assert "Incorrect API key provided" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "failed"
    assert out["findings"] == []


def test_review_with_the_provider_down_exits_3(
    changed_repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    down = dict(env, RLM_BASE_URL="http://127.0.0.1:9/v1")
    proc = run_cli(
        "review", "--repo", str(changed_repo), "--max-wall-seconds", "20", env=down, timeout=90
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert "review failed: could not reach http://127.0.0.1:9/v1" in proc.stderr


def test_review_help_documents_every_exit_code(env: dict[str, str]) -> None:
    proc = run_cli("review", "--help", env=env)
    assert proc.returncode == 0
    for code_line in ("  0  ", "  1  ", "  2  ", "  3  ", "  4  "):
        assert code_line in proc.stdout
    assert "the review is incomplete" in proc.stdout


def test_answer_parser_reads_json_objects_with_other_key_names_and_severities() -> None:
    answer = json.dumps(
        {
            "findings": [
                {"file": "./a.py", "line_number": "12", "level": "critical", "description": "x"},
                {"path": "b.py", "line": 4.0, "message": "multi\nline   message"},
                {"path": "c.py", "line": 1, "severity": "nit", "message": "z"},
            ]
        }
    )
    assert parse_answer(answer).findings == (
        Finding("a.py", 12, "error", "x"),
        Finding("b.py", 4, "warning", "multi line message"),
        Finding("c.py", 1, "info", "z"),
    )


@pytest.mark.parametrize(
    "answer",
    ["NO FINDINGS", "No findings.", "`NO FINDINGS`", "I checked every caller.\nNO FINDINGS"],
)
def test_the_no_findings_marker_is_read_on_a_line_of_its_own(answer: str) -> None:
    parsed = parse_answer(answer)
    assert parsed.no_findings and parsed.findings == ()
    assert judge(answer, "completed").verdict == "no_findings"


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "NO FINDINGS elsewhere, but I did not finish",
        "It returns [] when the list is empty.",
        '{"summary": "looks fine"}',
    ],
)
def test_an_answer_without_a_verdict_is_incomplete_never_clean(answer: str) -> None:
    review = judge(answer, "completed")
    assert review.verdict == "incomplete"
    assert review.problem is not None


def test_a_limited_or_failed_query_is_no_verdict_even_with_findings() -> None:
    stopped = judge(ERROR_LINE, "limit_reached", limit="max_cost_usd")
    assert stopped.verdict == "incomplete"
    assert stopped.findings == (Finding("calc/ops.py", 3, "error", ERROR_MESSAGE),)
    assert "max_cost_usd" in (stopped.problem or "")
    failed = judge("NO FINDINGS", "error", error="provider said 503")
    assert failed.verdict == "failed"
    assert failed.problem == "provider said 503"
