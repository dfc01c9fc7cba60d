"""Trajectory events shaped as the engine writes them (see a real file from `rlm-mcp ask`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVIL = "<script>alert(1)</script>"


def sample_events(*, evil: str = "", ended: bool = True) -> list[dict[str, Any]]:
    """A query with two turns: an llm_query, then an rlm_query one level down; then FINAL."""
    reply1 = f'Let me run this.\n```python\nprint(repo.read("calc/ops.py", 1, 3))\nx = llm_query("summarise")\n```\n{evil}'
    events: list[dict[str, Any]] = [
        {
            "event": "start",
            "t": 100.0,
            "depth": 0,
            "question": f"How does divide work?{evil}",
            "limits": {"max_depth": 1, "max_iterations": 16},
            "root": "/repo",
        },
        {
            "event": "note",
            "t": 100.1,
            "depth": 0,
            "message": "scouted",
            "candidates": [f"0. calc/{evil}ops.py:1-3: function divide"],
        },
        {
            "event": "root_reply",
            "t": 100.5,
            "depth": 0,
            "iteration": 1,
            "reply": reply1,
            "input_tokens": 1000,
            "output_tokens": 30,
        },
        {
            "event": "sub_call",
            "t": 100.8,
            "depth": 1,
            "model": "sub-model",
            "prompt": f"summarise {evil}",
            "answer": f"sub answer {evil}",
            "input_tokens": 80,
            "output_tokens": 5,
            "cached": False,
        },
        {
            "event": "exec",
            "t": 100.9,
            "depth": 0,
            "iteration": 1,
            "code": 'print(repo.read("calc/ops.py", 1, 3))',
            "stdout": f"   1| def divide(a, b):{evil}\n",
            "stderr": "",
            "error": None,
            "value": None,
            "duration": 0.4,
            "restarted": False,
        },
        {
            "event": "root_reply",
            "t": 101.5,
            "depth": 0,
            "iteration": 2,
            "reply": '```python\ny = rlm_query("inner question")\n```',
            "input_tokens": 1100,
            "output_tokens": 20,
        },
        {"event": "start", "t": 101.6, "depth": 1, "question": f"inner question {evil}"},
        {
            "event": "root_reply",
            "t": 102.0,
            "depth": 1,
            "iteration": 1,
            "reply": 'NESTED-REPLY ```python\nFINAL("inner done")\n```',
            "input_tokens": 900,
            "output_tokens": 10,
        },
        {
            "event": "exec",
            "t": 102.1,
            "depth": 1,
            "iteration": 1,
            "code": 'FINAL("inner done")',
            "stdout": "",
            "stderr": "",
            "error": None,
            "value": "'final answer set'",
            "duration": 0.01,
        },
        {
            "event": "exec",
            "t": 102.2,
            "depth": 0,
            "iteration": 2,
            "code": 'y = rlm_query("inner question")',
            "stdout": "inner done\n",
            "stderr": "",
            "error": None,
            "value": None,
            "duration": 0.6,
        },
    ]
    if ended:
        events.append(
            {
                "event": "end",
                "t": 103.0,
                "depth": 0,
                "answer": f"a / b {evil}",
                "status": "limit_reached",
                "limit": "max_iterations",
                "error": None,
                "usage": {
                    "calls": 4,
                    "input_tokens": 3080,
                    "output_tokens": 65,
                    "cost_usd": "0.0123",
                    "unpriced_models": [],
                    "by_model": {
                        "root-model": {
                            "calls": 3,
                            "input_tokens": 3000,
                            "output_tokens": 60,
                            "cost_usd": "0.0120",
                            "priced": True,
                        },
                        "sub-model": {
                            "calls": 1,
                            "input_tokens": 80,
                            "output_tokens": 5,
                            "cost_usd": "0.0003",
                            "priced": True,
                        },
                    },
                },
                "iterations": 2,
                "max_depth_reached": 1,
                "sub_calls": 1,
                "wall_seconds": 3.0,
                "evidence": [f"calc/{evil}ops.py:1-3"],
                "citations": [
                    {"text": "calc/ops.py:1", "verified": True, "nearest": []},
                    {
                        "text": f"nope{evil}.py:9",
                        "verified": False,
                        "nearest": [f"near{evil}.py:1"],
                    },
                ],
            }
        )
    return events


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path
