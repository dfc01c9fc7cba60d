"""``rlm-mcp chat``: follow-ups piped into a real subprocess against a scripted loopback model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlm_mcp.testing import LoopbackLLMServer
from tests.cli.cli_helpers import code, isolated_env


def _chat(repo: Path, env: dict[str, str], lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "chat", str(repo)],
        env=env,
        input=lines,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_chat_answers_follow_ups_in_one_repl_and_reset_starts_over(
    repo: Path, env: dict[str, str], llm: LoopbackLLMServer
) -> None:
    llm.enqueue(
        code('where = repo.symbols("divide")[0]["path"]\nFINAL(where)'),
        code('FINAL("still " + where)'),
        code("FINAL(str('where' in globals()))"),
    )
    proc = _chat(repo, env, "Where is divide?\n\nAnd again?\n/reset\nFresh?\n/nope\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["calc/ops.py", "still calc/ops.py", "False"]
    assert "/reset starts a new session" in proc.stderr
    assert "a new session starts with the next question" in proc.stderr
    assert "unknown command /nope" in proc.stderr
    second = json.dumps(llm.requests[1].json["messages"])
    assert "Q: Where is divide?" in second
    third = json.dumps(llm.requests[2].json["messages"])
    assert "Where is divide?" not in third


def test_chat_without_a_model_is_a_usage_error(repo: Path, tmp_path: Path) -> None:
    proc = _chat(repo, isolated_env(tmp_path), "hello\n")
    assert proc.returncode == 2
    assert "chat needs a model: set RLM_MODEL" in proc.stderr
