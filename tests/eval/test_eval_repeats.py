"""Reproducible runs and their spread, end to end against a loopback model.

Sampling settings reach the provider's request bodies (direct, RLM root and
sub calls), ``--repeats`` runs each pair N times and resumes by (question,
method, repeat), the report shows the mean and spread over repeats, and an RLM
strategy's records get their own method key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.eval.cli import main
from benchmarks.eval.methods import DIRECT_SYSTEM
from benchmarks.eval.questions import Question, QuestionSet, generate_set
from benchmarks.eval.report import summarize_spread
from benchmarks.eval.runner import RESULTS_FILE, read_records
from rlm_mcp.engine.prompts import LOCATE_ONLY_SYSTEM, SUB_SYSTEM
from rlm_mcp.testing import LoopbackLLMServer
from tests.eval.test_eval_smoke import SPECS, right_answer

SUB_QUESTION = "Name one file of the repository."


def _wrong(q: Question) -> str:
    return "999" if q.format == "integer" else "nothing matches"


class Recorder:
    """Keeps every request body and answers direct, RLM (explore, locate-only) and sub calls.

    With ``seed_decides`` the answer is right only when the request's seed is even, so
    repeats sampled with consecutive seeds score differently.
    """

    def __init__(self, qset: QuestionSet, *, seed_decides: bool = False) -> None:
        self.qset = qset
        self.seed_decides = seed_decides
        self.bodies: list[dict[str, Any]] = []
        self.systems: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        msgs = body["messages"]
        system = str(msgs[0].get("content") or "")
        self.systems.append(system)
        last = str(msgs[-1].get("content") or "")
        if SUB_QUESTION in last:
            return "shlex.py"
        if "You judge whether a piece of code" in last:  # repo.locate's judging round
            return "yes: it is the definition asked about"
        if "Which of these definitions" in last:  # repo.locate's narrowing round
            return "none"
        text = "\n".join(str(m.get("content") or "") for m in msgs)
        q = next(q for q in self.qset.questions if q.question in text)
        answer = right_answer(q)
        if self.seed_decides and int(body.get("seed", 1)) % 2:
            answer = _wrong(q)
        if system in (DIRECT_SYSTEM, LOCATE_ONLY_SYSTEM):
            return answer
        assert "persistent REPL" in system
        if len(msgs) == 2:  # first root turn: explore, with one sub call
            return f"```python\nprint(len(repo.files()), llm_query({SUB_QUESTION!r}))\n```"
        return f"```python\nFINAL({answer!r})\n```"


@pytest.fixture
def qset(tmp_path: Path) -> QuestionSet:
    made = generate_set(tmp_path / "cache", specs=SPECS, per_repo=3, seed=7)
    made.save(tmp_path / "set.json")
    return made


def _run(tmp_path: Path, server: LoopbackLLMServer, out: str, *extra: str) -> int:
    return main(
        [
            "run",
            "--base-url",
            server.base_url,
            "--model",
            "scripted",
            "--set",
            str(tmp_path / "set.json"),
            "--cache",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / out),
            "--window",
            "4096",
            "--max-wall-seconds",
            "60",
            *extra,
        ]
    )


def test_temperature_and_sampling_seed_reach_the_provider(
    tmp_path: Path, qset: QuestionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(qset)
    with LoopbackLLMServer(responder=recorder) as server:
        args = ("--methods", "direct,rlm", "--max-questions", "1")
        hot = ("--temperature", "0.7", "--sampling-seed", "11")
        assert _run(tmp_path, server, "hot", *args, *hot) == 0
        # direct: one call; rlm: explore turn, its sub call, the FINAL turn
        assert len(recorder.bodies) == 1 + 3
        assert recorder.systems.count(DIRECT_SYSTEM) == 1
        assert sum("persistent REPL" in s for s in recorder.systems) == 2  # root turns
        assert recorder.systems.count(SUB_SYSTEM) == 1  # the sub call
        for body in recorder.bodies:
            assert body["temperature"] == 0.7 and body["seed"] == 11, body
        records = read_records(tmp_path / "hot" / RESULTS_FILE)
        assert {r["method"] for r in records} == {"direct", "rlm"}
        for r in records:
            assert (r["temperature"], r["sampling_seed"], r["repeat"]) == (0.7, 11, 0)
            assert r["score"]["value"] == 1.0, r

        # 'none' sends neither field, for providers without them
        recorder.bodies.clear()
        bare = ("--temperature", "none", "--sampling-seed", "-1")
        assert _run(tmp_path, server, "bare", *args, *bare) == 0
        assert len(recorder.bodies) == 4
        for body in recorder.bodies:
            assert "temperature" not in body and "seed" not in body, body
        for r in read_records(tmp_path / "bare" / RESULTS_FILE):
            assert r["temperature"] is None and r["sampling_seed"] is None

        # resuming a file with other sampling settings warns, and asks nothing again
        recorder.bodies.clear()
        capsys.readouterr()
        assert _run(tmp_path, server, "hot", *args) == 0
        assert recorder.bodies == []
        out = capsys.readouterr().out
        assert "warning: direct records" in out and "temperature=0.7 seed=11" in out


def test_repeats_run_each_pair_n_times_resume_and_report_the_spread(
    tmp_path: Path, qset: QuestionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(qset, seed_decides=True)
    results = tmp_path / "out" / RESULTS_FILE
    args = ("--methods", "direct,search", "--max-questions", "2")
    with LoopbackLLMServer(responder=recorder) as server:
        assert _run(tmp_path, server, "out", *args) == 0
        first = read_records(results)
        assert len(first) == 2 * 2 and len(recorder.bodies) == 2
        for r in first:
            if r["method"] == "direct":  # default sampling: temperature 0, the fixed seed
                assert (r["temperature"], r["sampling_seed"]) == (0.0, 20250601)
                assert r["score"]["value"] == 0.0  # odd seed: scripted to be wrong
            else:
                assert r["temperature"] is None and r["sampling_seed"] is None
        assert all(b["temperature"] == 0 and b["seed"] == 20250601 for b in recorder.bodies)

        # Records from before repeats existed carry no repeat: they count as repeat 0.
        old = [
            {k: v for k, v in r.items() if k not in ("repeat", "temperature", "sampling_seed")}
            for r in first
        ]
        results.write_text("".join(json.dumps(r) + "\n" for r in old))

        recorder.bodies.clear()
        assert _run(tmp_path, server, "out", *args, "--repeats", "2") == 0
        assert len(recorder.bodies) == 2  # only repeat 1 of direct; search needs no model
        assert all(b["seed"] == 20250601 + 1 for b in recorder.bodies)
        records = read_records(results)
        triples = [(r["question_id"], r["method"], r.get("repeat", 0)) for r in records]
        assert len(triples) == len(set(triples)) == 2 * 2 * 2
        again = [r for r in records if r.get("repeat") == 1]
        assert len(again) == 4
        assert all(r["score"]["value"] == 1.0 for r in again if r["method"] == "direct")

        # Everything is done: no model calls.
        recorder.bodies.clear()
        capsys.readouterr()
        assert _run(tmp_path, server, "out", *args, "--repeats", "2") == 0
        assert recorder.bodies == []
    run_out = capsys.readouterr().out

    assert (
        main(["report", "--set", str(tmp_path / "set.json"), "--out", str(tmp_path / "out")]) == 0
    )
    report_out = capsys.readouterr().out
    for out in (run_out, report_out):
        assert "Spread over repeats" in out
        rows = [line.split() for line in out.splitlines() if line.startswith("all ")]
        # kind bucket method n reps acc min-max sd in_tok wall_s
        direct = next(row for row in rows if row[:3] == ["all", "all", "direct"])
        assert direct[3:8] == ["2", "2", "0.50", "0.00-1.00", "0.71"]
        search = next(row for row in rows if row[:3] == ["all", "all", "search"])
        assert search[4] == "2" and search[7] == "0.00"  # deterministic: no spread
    spread = json.loads((tmp_path / "out" / "summary.json").read_text())["spread"]
    row = spread["all"]["all"]["direct"]
    assert row["repeats"] == 2 and row["n"] == 2
    assert row["per_repeat"] == {"0": 0.0, "1": 1.0}
    assert (row["accuracy"], row["accuracy_min"], row["accuracy_max"]) == (0.5, 0.0, 1.0)
    assert row["accuracy_sd"] == pytest.approx(0.7071, abs=1e-4)


def test_spread_leaves_out_a_repeat_cut_short() -> None:
    def rec(q: str, repeat: int | None, value: float) -> dict[str, Any]:
        r: dict[str, Any] = {
            "question_id": q,
            "method": "rlm",
            "kind": "needle",
            "repo_tokens": 4000,
            "score": {"value": value, "exact": value == 1.0},
            "input_tokens": 100,
            "wall_seconds": 2.0,
        }
        if repeat is not None:
            r["repeat"] = repeat
        return r

    records = [rec("a", None, 1), rec("b", None, 0), rec("a", 1, 1), rec("b", 1, 1)]
    records.append(rec("a", 2, 0))  # repeat 2 cut short after one question
    row = summarize_spread(records)["needle"]["<=8k"]["rlm"]
    assert (row["repeats"], row["partial_repeats"], row["n"]) == (2, 1, 2)
    assert row["per_repeat"] == {0: 0.5, 1: 1.0}
    assert row["accuracy"] == 0.75
    assert summarize_spread([r for r in records if "repeat" not in r]) == {}


def test_a_strategy_gets_its_own_method_key(
    tmp_path: Path, qset: QuestionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(qset)
    results = tmp_path / "out" / RESULTS_FILE
    args = ("--methods", "rlm", "--max-questions", "1")
    with LoopbackLLMServer(responder=recorder) as server:
        assert _run(tmp_path, server, "out", *args, "--strategy", "locate-only") == 0
        assert LOCATE_ONLY_SYSTEM in recorder.systems  # the one composing call
        (located,) = read_records(results)
        assert located["method"] == "rlm:locate-only"
        assert located["strategy"] == "locate-only" and located["located"] > 0
        assert located["score"]["value"] == 1.0, located

        # The default strategy is not taken as done by the locate-only record.
        recorder.systems.clear()
        assert _run(tmp_path, server, "out", *args) == 0
        assert LOCATE_ONLY_SYSTEM not in recorder.systems and recorder.systems
    records = read_records(results)
    assert [r["method"] for r in records] == ["rlm:locate-only", "rlm"]
    assert records[0]["question_id"] == records[1]["question_id"]
    assert records[1]["strategy"] == "explore"
    table = (tmp_path / "out" / "table.txt").read_text()
    rows = {line.split()[1] for line in table.splitlines() if line.startswith("all ")}
    assert {"rlm", "rlm:locate-only"} <= rows
    assert "rlm:locate-only" in capsys.readouterr().out
