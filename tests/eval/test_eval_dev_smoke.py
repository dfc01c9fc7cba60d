"""The dev suite end to end on a local polyglot tree: generate, run all methods, score, report."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.eval.cli import NAMED_SETS, _resolve, main
from benchmarks.eval.corpus import SOURCE_EXTENSIONS, RepoSpec
from benchmarks.eval.methods import DIRECT_SYSTEM
from benchmarks.eval.questions import Question, QuestionSet, generate_set
from benchmarks.eval.runner import RESULTS_FILE, read_records
from rlm_mcp.testing import LoopbackLLMServer


def right_answer(q: Question) -> str:
    e = q.expected
    if q.format == "locations":
        return f"{e['path']}:{e['line']}"
    if q.format == "callers":
        return ", ".join(f"{c['qualname']} ({c['path']}:{c['start']})" for c in e["callers"])
    return "\n".join(e["paths"])


class ScriptedModel:
    """Direct prompting names only the first reference file; the RLM explores, then answers."""

    def __init__(self, qset: QuestionSet) -> None:
        self.qset = qset
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> str:
        self.calls += 1
        msgs = body["messages"]
        text = "\n".join(str(m.get("content") or "") for m in msgs)
        q = next(q for q in self.qset.questions if q.question in text)
        if str(msgs[0].get("content")) == DIRECT_SYSTEM:
            return f"Probably {q.expected['path']}."
        if len(msgs) == 2:
            return "```python\nprint(repo.search('storage'))\n```"
        return f"```python\nFINAL({right_answer(q)!r})\n```"


@pytest.fixture
def dev_set(polyglot: Path, tmp_path: Path) -> QuestionSet:
    spec = RepoSpec("poly", ("",), f"dir:{polyglot}", SOURCE_EXTENSIONS)
    made = generate_set(tmp_path / "cache", specs=(spec,), per_repo=6, seed=11, suite="dev")
    made.save(tmp_path / "dev.json")
    return made


@pytest.fixture
def server(dev_set: QuestionSet) -> Iterator[tuple[LoopbackLLMServer, ScriptedModel]]:
    scripted = ScriptedModel(dev_set)
    with LoopbackLLMServer(responder=scripted) as srv:
        yield srv, scripted


def test_dev_set_runs_every_method_and_reports_recall(
    tmp_path: Path, dev_set: QuestionSet, server: tuple[LoopbackLLMServer, ScriptedModel]
) -> None:
    srv, scripted = server
    out = tmp_path / "out"
    where = ["--set", str(tmp_path / "dev.json"), "--out", str(out)]
    model = ["--base-url", srv.base_url, "--model", "scripted", "--window", "4096"]
    code = main(["run", *where, "--cache", str(tmp_path / "cache"), *model])
    assert code == 0
    records = read_records(out / RESULTS_FILE)
    assert len(records) == len(dev_set.questions) * 4
    by = {(r["question_id"], r["method"]): r for r in records}
    for q in dev_set.questions:
        rlm = by[(q.id, "rlm")]
        assert rlm["score"]["value"] == 1.0, rlm
        assert rlm["language"] == q.expected["language"]
        for floor in ("retrieval", "search"):
            rec = by[(q.id, floor)]
            assert rec["input_tokens"] == 0 and rec["status"] == "completed", rec
            assert set(rec["score"]["metrics"]) >= {"recall@1", "recall@3", "recall@5"}
        direct = by[(q.id, "direct")]
        assert direct["score"]["metrics"]["recall@1"] == 1.0  # it named the right file
    # the floors find the locate answers of this tiny tree by words alone
    locate = [q for q in dev_set.questions if q.kind == "locate"]
    assert all(by[(q.id, "retrieval")]["score"]["metrics"]["recall@5"] == 1.0 for q in locate)

    table = (out / "table.txt").read_text()
    assert "By kind and size" in table and "r@1" in table
    for kind in ("locate", "impact", "how"):
        assert f"\n{kind:<13} <=8k" in table
    summary = json.loads((out / "summary.json").read_text())
    row = summary["by_kind"]["locate"]["all"]["rlm"]
    assert row["accuracy"] == 1.0 and row["recall@1"] == 1.0

    calls = scripted.calls
    assert main(["report", *where]) == 0
    assert scripted.calls == calls


def test_named_sets_choose_file_suite_folder_and_size() -> None:
    args = argparse.Namespace(set="dev", suite=None, out=None, per_repo=None)
    _resolve(args)
    assert (args.set, args.out) == NAMED_SETS["dev"]
    assert (args.suite, args.per_repo) == ("dev", 6)
    args = argparse.Namespace(set="stdlib", suite=None, out=None, per_repo=4)
    _resolve(args)
    assert (args.set, args.out, args.suite, args.per_repo) == (*NAMED_SETS["stdlib"], "stdlib", 4)
