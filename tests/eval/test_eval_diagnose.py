"""Failure-pattern tagging over RLM trajectories."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.eval.diagnose import diagnose, tag_trajectory


def _write(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_tags_and_counts(tmp_path: Path) -> None:
    traj = _write(
        tmp_path / "t.jsonl",
        [
            {"event": "start", "depth": 0, "question": "q"},
            {
                "event": "root_reply",
                "depth": 0,
                "iteration": 1,
                "reply": "FINAL('a.py:1')\n[turn 2 of 6]",
            },
            {
                "event": "exec",
                "depth": 0,
                "iteration": 2,
                "code": "print(repo.grep('x'))",
                "error": "KeyError: 'line'",
            },
            {"event": "end", "depth": 0, "status": "limit_reached", "answer": "None"},
        ],
    )
    tags = tag_trajectory(traj)
    assert {"no_code_reply", "bare_final", "invented_turn", "exec_error", "used_grep"} <= tags
    assert {"final_none", "limit_reached"} <= tags
    assert "final_first_turn" not in tags
    record = {
        "method": "rlm",
        "question_id": "r/needle/0",
        "score": {"value": 0.0},
        "trajectory": str(traj),
    }
    text = diagnose([record], show=1)
    assert "bare_final" in text and "---- r/needle/0" in text
