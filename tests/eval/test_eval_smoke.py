"""The eval harness end to end against a scripted model: generate, run, score, resume, table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.eval.cli import main
from benchmarks.eval.corpus import RepoSpec
from benchmarks.eval.methods import DIRECT_SYSTEM
from benchmarks.eval.questions import Question, QuestionSet, generate_set
from benchmarks.eval.runner import RESULTS_FILE, read_records
from rlm_mcp.testing import LoopbackLLMServer

SPECS = (RepoSpec("tiny", ("shlex.py", "bisect.py")), RepoSpec("json", ("json",)))


def right_answer(q: Question) -> str:
    e = q.expected
    if q.format == "path_line":
        return f"It is defined in `{e['path']}` at line {e['line']}."
    if q.format == "name_list":
        return ", ".join(e["names"])
    return f"{e['count']}"


def _text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


class ScriptedModel:
    """Answers RLM turns with code (explore, then FINAL) and direct prompts in prose.

    Direct prompting is scripted to get count questions wrong, so scores vary.
    """

    def __init__(self, qset: QuestionSet) -> None:
        self.qset = qset
        self.kinds: list[str] = []

    def _question(self, text: str) -> Question:
        for q in self.qset.questions:
            if q.question in text:
                return q
        raise AssertionError("no known question in the prompt")

    def __call__(self, body: dict[str, Any]) -> str:
        msgs = body["messages"]
        system = str(msgs[0].get("content") or "")
        q = self._question(_text(body))
        if system == DIRECT_SYSTEM:
            self.kinds.append("direct")
            assert "=== " in str(msgs[1]["content"])  # repository text is in the prompt
            return "999" if q.format == "integer" else right_answer(q)
        assert "persistent REPL" in system
        self.kinds.append("rlm")
        if len(msgs) == 2:  # first turn: explore
            return "```python\nprint(len(repo.files()), repo.files()[:3])\n```"
        return f"```python\nFINAL({right_answer(q)!r})\n```"


@pytest.fixture
def qset(tmp_path: Path) -> QuestionSet:
    made = generate_set(tmp_path / "cache", specs=SPECS, per_repo=3, seed=7)
    made.save(tmp_path / "set.json")
    return made


@pytest.fixture
def model(qset: QuestionSet) -> Iterator[tuple[LoopbackLLMServer, ScriptedModel]]:
    scripted = ScriptedModel(qset)
    with LoopbackLLMServer(responder=scripted) as server:
        yield server, scripted


def _run(tmp_path: Path, server: LoopbackLLMServer, *extra: str) -> int:
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
            str(tmp_path / "out"),
            "--window",
            "4096",
            "--max-wall-seconds",
            "60",
            *extra,
        ]
    )


def test_generation_is_deterministic_and_grounded(tmp_path: Path, qset: QuestionSet) -> None:
    again = generate_set(tmp_path / "cache", specs=SPECS, per_repo=3, seed=7)
    assert again.digest == qset.digest
    assert len(qset.questions) == 6
    assert {q.format for q in qset.questions} == {"path_line", "name_list", "integer"}
    tiny = qset.repos["tiny"]
    assert 2_000 < tiny.tokens < 8_000
    for q in qset.questions:
        if q.kind == "needle":
            path = tmp_path / "cache" / "repos" / q.repo / q.expected["path"]
            lines = path.read_text().splitlines()
            assert lines[q.expected["line"] - 1].lstrip().startswith(("def ", "async def "))


def test_run_all_methods_resume_and_table(
    tmp_path: Path,
    qset: QuestionSet,
    model: tuple[LoopbackLLMServer, ScriptedModel],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, scripted = model
    results = tmp_path / "out" / RESULTS_FILE

    assert _run(tmp_path, server, "--max-questions", "2") == 0
    first = read_records(results)
    assert len(first) == 2 * 4
    assert {r["repo"] for r in first} == {"tiny", "json"}  # spread over sizes

    # A crash mid-write leaves a torn line; the next run cuts it and resumes.
    with results.open("a") as fh:
        fh.write('{"set": "torn')
    calls_before = len(scripted.kinds)
    assert _run(tmp_path, server) == 0
    records = read_records(results)
    pairs = [(r["question_id"], r["method"]) for r in records]
    assert len(pairs) == len(set(pairs)) == 6 * 4
    assert results.read_text().endswith("\n")
    # the two finished questions were not asked again: 4 direct + 4 RLM (2 turns each)
    assert len(scripted.kinds) - calls_before == 4 + 4 * 2

    by = {(r["question_id"], r["method"]): r for r in records}
    for q in qset.questions:
        rlm = by[(q.id, "rlm")]
        assert rlm["status"] == "completed" and rlm["iterations"] == 2
        assert rlm["score"]["value"] == 1.0, rlm
        direct = by[(q.id, "direct")]
        assert direct["score"]["value"] == (0.0 if q.format == "integer" else 1.0)
        assert 0 < direct["included_fraction"] <= 1
        assert by[(q.id, "retrieval")]["input_tokens"] == 0
        assert by[(q.id, "search")]["input_tokens"] == 0

    # Nothing left to do: a third run makes no model calls.
    calls_before = len(scripted.kinds)
    assert _run(tmp_path, server) == 0
    assert len(scripted.kinds) == calls_before

    out = capsys.readouterr().out
    assert "retrieval" in out and "search" in out and "direct" in out and "rlm" in out
    table = (tmp_path / "out" / "table.txt").read_text()
    assert "<=8k" in table and "8k-32k" in table and "all" in table
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["all"]["rlm"]["accuracy"] == 1.0
    assert summary["all"]["rlm"]["iterations"] == 2.0


def test_budget_stops_before_spending(
    tmp_path: Path, qset: QuestionSet, model: tuple[LoopbackLLMServer, ScriptedModel]
) -> None:
    server, scripted = model
    assert _run(tmp_path, server, "--budget-seconds", "0", "--methods", "direct") == 0
    assert read_records(tmp_path / "out" / RESULTS_FILE) == []
    assert scripted.kinds == []
