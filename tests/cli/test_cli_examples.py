"""The examples work: client configs name a valid ``rlm-mcp serve``, the scripts run offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import code

from rlm_mcp.backends.testing import LoopbackLLMServer
from rlm_mcp.cli import build_parser, main
from rlm_mcp.settings_loader import SETTINGS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = {
    "claude_desktop_config.json": "mcpServers",
    "vscode/.vscode/mcp.json": "servers",
    "cursor/.cursor/mcp.json": "mcpServers",
    "zed/settings.json": "context_servers",
}
KNOWN_ENV = {s.env for s in SETTINGS} | {"OPENAI_API_KEY"}


def _server(rel: str) -> dict[str, Any]:
    data = json.loads((EXAMPLES / rel).read_text())
    entry: dict[str, Any] = data[CONFIGS[rel]]["rlm-mcp"]
    return entry


@pytest.mark.parametrize("rel", sorted(CONFIGS))
def test_client_config_names_a_valid_serve_command(
    rel: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _server(rel)
    assert server["command"] == "rlm-mcp"
    args = [a.replace("${workspaceFolder}", str(tmp_path)) for a in server["args"]]
    assert args[0] == "serve"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve" and parsed.transport == "stdio"
    assert set(server.get("env", {})) <= KNOWN_ENV
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    assert "usage: rlm-mcp serve" in capsys.readouterr().out


def test_review_workflow_runs_rlm_mcp_review_and_comments_with_gh() -> None:
    workflow = (EXAMPLES / "review-bot" / ".github" / "workflows" / "rlm-review.yml").read_text()
    assert "on:\n  pull_request:" in workflow
    assert "pip install rlm-mcp" in workflow
    assert 'rlm-mcp review --base "origin/${{ github.base_ref }}" --json' in workflow
    assert "gh pr comment" in workflow
    parser = build_parser()
    assert parser.parse_args(["review", "--base", "origin/main", "--json"]).json is True


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _env(tmp_path: Path, llm: LoopbackLLMServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_", "XDG_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        RLM_CACHE_DIR=str(tmp_path / "cache"),
        RLM_TRAJECTORY_DIR=str(tmp_path / "traj"),
        RLM_BASE_URL=llm.base_url,
        RLM_MODEL="root-model",
    )
    return env


def test_review_bot_script_prints_a_comment_from_the_findings(
    tmp_path: Path, llm: LoopbackLLMServer, repo: Path
) -> None:
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    (repo / "calc" / "ops.py").write_text("def divide(a, b):\n    return a / 0\n")
    llm.responder = lambda body: code('FINAL("calc/ops.py:2: error: always divides by zero")')
    env = _env(tmp_path, llm) | {"REVIEW_BASE": "HEAD"}
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "review-bot" / "review.sh")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 1, proc.stderr
    assert "- **error** `calc/ops.py:2`: always divides by zero" in proc.stdout


def test_library_example_answers_against_the_loopback_model(
    tmp_path: Path, llm: LoopbackLLMServer, repo: Path
) -> None:
    llm.enqueue(code('FINAL("add is in calc/ops.py:6")'))
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "library_use.py"),
            str(repo),
            "Where is add?",
            "--model",
            "root-model",
            "--base-url",
            llm.base_url,
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        env=_env(tmp_path, llm),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "add is in calc/ops.py:6\n"
    assert "status=completed calls=1" in proc.stderr
