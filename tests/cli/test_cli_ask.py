"""ask and trace as real subprocesses against a scripted loopback model."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import code, isolated_env, run_cli

from rlm_mcp.backends.testing import LoopbackLLMServer


def test_ask_prints_the_answer_on_stdout_and_progress_on_stderr(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('FINAL("divide lives in calc/ops.py:1")'))
    proc = run_cli("ask", str(repo), "Where is divide defined?", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "divide lives in calc/ops.py:1\n"
    assert "turn 1/16" in proc.stderr
    assert "completed; 1 LLM calls" in proc.stderr
    request = llm.requests[0].json
    assert request["model"] == "root-model"
    assert "Where is divide defined?" in json.dumps(request["messages"])


def test_ask_json_gives_the_full_result_and_trace_reads_its_trajectory(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('print(repo.read("calc/ops.py", 1, 3))'), code('FINAL("a / b")'))
    proc = run_cli("ask", str(repo), "How does divide work?", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed"
    assert result["answer"] == "a / b"
    assert result["iterations"] == 2
    assert result["usage"]["calls"] == 2
    trajectory = Path(result["trajectory"])
    assert trajectory.parent == Path(env["RLM_TRAJECTORY_DIR"])

    shown = run_cli("trace", str(trajectory), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "# question (depth 0): How does divide work?" in shown.stdout
    assert 'repo.read("calc/ops.py", 1, 3)' in shown.stdout
    assert "status=completed" in shown.stdout
    newest = run_cli("trace", "--full", env=env)
    assert newest.stdout == shown.stdout


def test_ask_stopped_by_a_limit_exits_2_with_the_best_answer(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: code('print("still looking")')
    proc = run_cli("ask", str(repo), "Anything?", "--max-iterations", "1", "--json", env=env)
    assert proc.returncode == 2, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "limit_reached"
    assert result["limit"] == "max_iterations"


def test_ask_without_a_model_answers_from_ranked_search_and_exits_0(
    repo: Path, tmp_path: Path
) -> None:
    proc = run_cli("ask", str(repo), "Where do we divide two numbers?", env=isolated_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "ranked search alone (no LLM)" in proc.stdout
    first_hit = proc.stdout.splitlines()[2]
    assert first_hit.strip().startswith("calc/ops.py:1-3: function divide")
    assert "RLM_MODEL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ask_without_a_model_as_json_labels_the_answer_search_only(
    repo: Path, tmp_path: Path
) -> None:
    proc = run_cli("ask", str(repo), "divide", "--json", env=isolated_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "search_only" and out["answer"] is None
    assert out["candidates"][0]["qualname"] == "divide"


def test_find_prints_ranked_hits_and_exits_1_when_nothing_matches(
    repo: Path, tmp_path: Path
) -> None:
    proc = run_cli("find", str(repo), "add two numbers", env=isolated_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("calc/ops.py:6-7: function add")
    none = run_cli("find", str(repo), "kubernetes helm chart", env=isolated_env(tmp_path))
    assert none.returncode == 1 and none.stdout == ""


def test_ask_reports_a_provider_failure_as_exit_1(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    bad = dict(env, RLM_BASE_URL="http://127.0.0.1:9/v1")
    proc = run_cli("ask", str(repo), "Where?", "--max-wall-seconds", "20", env=bad, timeout=90)
    assert proc.returncode == 1
    assert "error" in proc.stderr


def test_trace_of_a_missing_file_exits_1(tmp_path: Path, env: dict[str, str]) -> None:
    proc = run_cli("trace", str(tmp_path / "none.jsonl"), env=env)
    assert proc.returncode == 1
    assert "no such trajectory file" in proc.stderr
