"""ask and trace as real subprocesses against a scripted loopback model."""

from __future__ import annotations

import json
from pathlib import Path

from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.cli.cli_helpers import code, isolated_env, run_cli, run_cli_tty, write_tree


def test_ask_prints_the_answer_on_stdout_and_progress_on_stderr_when_asked(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('FINAL("divide lives in calc/ops.py:1")'))
    proc = run_cli("ask", str(repo), "Where is divide defined?", "--progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "divide lives in calc/ops.py:1\nrests on (verified in the index): calc/ops.py:1\n"
    )
    assert "turn 1/16 (depth 0) done; 1 LLM calls" in proc.stderr
    assert "completed; 1 LLM calls" in proc.stderr
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr
    request = llm.requests[0].json
    assert request["model"] == "root-model"
    assert "Where is divide defined?" in json.dumps(request["messages"])


def test_ask_without_a_terminal_prints_no_progress_and_no_colour(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('FINAL("divide lives in calc/ops.py:1")'))
    proc = run_cli("ask", str(repo), "Where is divide defined?", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[0]]
    assert proc.stderr.startswith("rlm-mcp: completed; 1 LLM calls")
    assert "\x1b[" not in proc.stderr


def test_ask_on_a_terminal_shows_turn_calls_spend_and_waiting_for_the_model(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('print("looking")'), code('FINAL("found it")'))
    status, out, err = run_cli_tty("ask", str(repo), "Where is divide?", env=env)
    assert status == 0, err
    assert out == "found it\n", "the answer goes to stdout, not to the terminal's status line"
    assert "rlm-mcp: turn 1/16 · 0 LLM calls · $0 spent" in err
    assert "waiting for the model" in err
    assert "turn 2/16 · 1 LLM call · $" in err
    assert "\r\x1b[K" in err, "the status line is redrawn in place and cleared at the end"
    assert "rlm-mcp: completed; 2 LLM calls" in err
    llm.enqueue(code('FINAL("again")'))
    quiet = run_cli_tty("ask", str(repo), "Again?", "--no-progress", env=env)
    assert "waiting for the model" not in quiet[2]


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


def test_ask_stopped_by_a_limit_exits_4_with_the_best_answer(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: code('print("still looking")')
    proc = run_cli("ask", str(repo), "Anything?", "--max-iterations", "1", "--json", env=env)
    assert proc.returncode == 4, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "limit_reached"
    assert result["limit"] == "max_iterations"


def test_ask_without_an_answer_prints_the_ranked_locations_and_says_why_on_stderr(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: code('print("still looking")')
    proc = run_cli("ask", str(repo), "Where do we divide?", "--max-iterations", "1", env=env)
    assert proc.returncode == 4, proc.stderr
    assert "No final answer" not in proc.stdout
    assert "Ranked search (no LLM) found these locations" in proc.stdout
    assert "calc/ops.py:1-3: function divide" in proc.stdout
    assert "No final answer: the query stopped" in proc.stderr


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


def test_ask_sends_the_temperature_and_seed_flags_with_every_call(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(code('FINAL("divide lives in calc/ops.py:1")'))
    proc = run_cli(
        "ask", str(repo), "Where is divide defined?", "--temperature", "0", "--seed", "3", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert llm.requests and all(
        r.json["temperature"] == 0 and r.json["seed"] == 3 for r in llm.requests
    )
    bad = run_cli("ask", str(repo), "Where?", "--strategy", "guess", env=env)
    assert bad.returncode == 2 and "strategy must be one of" in bad.stderr


def test_ask_marks_a_citation_the_index_lacks_in_its_text_output(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    invented = 'FINAL("divide is in calc/ops.py:1 and calls calc/magic.py:7")'
    # the invented path is shown back once; the model keeps it
    llm.enqueue(code(invented))
    llm.enqueue(code(invented))
    proc = run_cli("ask", str(repo), "Where is divide defined?", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "divide is in calc/ops.py:1 and calls calc/magic.py:7 (?)"
    assert "(?) not found in the index: the model may have invented it: calc/magic.py:7" in lines
    assert "rests on (verified in the index): calc/ops.py:1" in lines


def test_find_lists_callers_with_their_signals_and_leaves_tests_out_on_request(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_ops.py").write_text(
        "from calc.ops import add\n\n\ndef test_add_two_numbers():\n    assert add(1, 2) == 3\n"
    )
    env = isolated_env(tmp_path)
    proc = run_cli("find", str(repo), "add two numbers", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("calc/ops.py:6-7: function add") and "[bm25" in lines[0]
    assert any(line.startswith("tests/test_ops.py") for line in lines)
    for flags in (["--exclude-tests"], ["-g", "**/*.py", "-g", "!tests/**"]):
        kept = run_cli("find", str(repo), "add two numbers", *flags, env=env)
        assert kept.returncode == 0, kept.stderr
        assert kept.stdout and "tests/" not in kept.stdout, flags


def test_ask_reports_a_provider_failure_as_exit_3(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    bad = dict(env, RLM_BASE_URL="http://127.0.0.1:9/v1")
    proc = run_cli("ask", str(repo), "Where?", "--max-wall-seconds", "20", env=bad, timeout=90)
    assert proc.returncode == 3
    assert "rlm-mcp: error: " in proc.stderr
    assert "Traceback" not in proc.stderr and "hint" not in proc.stderr


def test_ask_against_a_base_url_without_v1_that_answers_404_suggests_adding_v1(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: Reply.error(404, "404 page not found")
    ollama_style = llm.base_url.removesuffix("/v1")
    proc = run_cli("ask", str(repo), "Where?", env=dict(env, RLM_BASE_URL=ollama_style))
    assert proc.returncode == 3
    assert "HTTP 404" in proc.stderr
    assert f"hint: {ollama_style} answered 404" in proc.stderr
    assert f"try RLM_BASE_URL={ollama_style}/v1" in proc.stderr
    llm.responder = lambda body: Reply.error(404, "The model `root-model` does not exist")
    with_v1 = run_cli("ask", str(repo), "Where?", env=env)
    assert with_v1.returncode == 3 and "hint" not in with_v1.stderr


def test_ask_on_a_directory_with_nothing_indexable_spends_no_model_call(
    tmp_path: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blob.bin").write_bytes(b"\x00\x01" * 50)
    proc = run_cli("ask", str(empty), "What does this do?", env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"nothing to answer from: {empty} has no indexable files (skipped: binary 1)" in (
        proc.stderr
    )
    assert "no model was called" in proc.stderr
    assert llm.requests == []
    no_model = run_cli("ask", str(empty), "What?", env=isolated_env(tmp_path))
    assert no_model.returncode == 1 and "nothing to answer from" in no_model.stderr


def test_a_nan_limit_is_a_configuration_error(repo: Path, env: dict[str, str]) -> None:
    proc = run_cli("ask", str(repo), "Where?", env=dict(env, RLM_MAX_WALL_SECONDS="nan"))
    assert proc.returncode == 2
    assert proc.stderr == (
        "rlm-mcp: configuration error: max_wall_seconds must be a positive number of seconds, "
        "got nan\n"
    )


def test_trace_of_a_missing_file_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    proc = run_cli("trace", str(tmp_path / "none.jsonl"), env=env)
    assert proc.returncode == 2
    assert "no such trajectory file" in proc.stderr


def test_trace_with_no_trajectories_exits_1(env: dict[str, str]) -> None:
    proc = run_cli("trace", env=env)
    assert proc.returncode == 1
    assert "no trajectories in" in proc.stderr


def test_trace_of_a_binary_file_is_one_line_and_exit_2(tmp_path: Path, env: dict[str, str]) -> None:
    blob = tmp_path / "blob.jsonl"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 20)
    proc = run_cli("trace", str(blob), env=env)
    assert proc.returncode == 2
    assert proc.stderr == f"rlm-mcp: error: {blob} is not a trajectory: it is not UTF-8 text\n"
    assert proc.stdout == ""


def test_trace_of_json_lines_that_are_no_trajectory_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str]
) -> None:
    other = write_tree(tmp_path, {"other.jsonl": '{"a": 1}\n{"event": 3}\n[1, 2]\n'})
    proc = run_cli("trace", str(other / "other.jsonl"), env=env)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1
    assert "is not a trajectory: it has no trajectory events" in proc.stderr
    assert proc.stdout == ""
