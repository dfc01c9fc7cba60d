"""The examples work: client configs name a valid ``rlm-mcp serve``, the scripts run offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.cli import build_parser, main
from rlm_mcp.settings_loader import SETTINGS
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.cli.cli_helpers import SAMPLE, code, write_tree

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


INSTALLED = "/.local/share/rlm-mcp/bin/rlm-mcp"
"""Where the README's install puts the script; GUI clients need its absolute path."""
HOMES = ("${userHome}", "/Users/me", "/home/me")
"""The home directory as each example spells it: VS Code's and Cursor's variable, or a placeholder."""
TOOLS = {"rlm_load", "rlm_query", "rlm_find", "rlm_search", "rlm_read", "rlm_exec"}


def _substitute(value: str, home: Path, workspace: Path) -> str:
    """What the client does to a configured string: its variables and our placeholders."""
    value = value.replace("${workspaceFolder}", str(workspace))
    value = value.replace("${input:openai-key}", "sk-test")
    for spelled in HOMES:
        value = value.replace(spelled, str(home))
    return value


@pytest.mark.parametrize("rel", sorted(CONFIGS))
def test_client_config_names_a_valid_serve_command_by_its_absolute_path(
    rel: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _server(rel)
    command = server["command"]
    assert command.endswith(INSTALLED), "GUI clients do not see a venv's PATH: use the full path"
    assert command.startswith(HOMES)
    args = [_substitute(a, tmp_path, tmp_path) for a in server["args"]]
    assert args[0] == "serve"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve" and parsed.transport in (
        None,
        "stdio",
    )  # None: stdio unless --openai-only
    assert set(server.get("env", {})) <= KNOWN_ENV
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    assert "usage: rlm-mcp serve" in capsys.readouterr().out


@pytest.mark.parametrize("rel", sorted(CONFIGS))
async def test_client_config_starts_a_server_that_lists_its_tools_and_loads_the_allowed_root(
    rel: str, tmp_path: Path
) -> None:
    """Start the configured command as the client would: the installed script by its
    absolute path (this venv's), the configured arguments and env, nothing else on PATH."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = _server(rel)
    home = tmp_path / "home"
    workspace = home / "src"
    write_tree(workspace / "project", SAMPLE)
    script = shutil.which("rlm-mcp", path=str(Path(sys.executable).parent))
    assert script is not None
    assert _substitute(server["command"], home, workspace) == str(home) + INSTALLED
    args = [_substitute(a, home, workspace) for a in server["args"]]
    env = {k: _substitute(v, home, workspace) for k, v in server.get("env", {}).items()}
    params = StdioServerParameters(
        command=script, args=args, env={**env, "HOME": str(home), "PATH": "/usr/bin:/bin"}
    )
    errlog = tmp_path / "stderr.log"
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools >= TOOLS, errlog.read_text()
            loaded = await client.call_tool("rlm_load", {"path": str(workspace / "project")})
            assert not loaded.is_error, loaded.content
            assert loaded.structured_content["files"] == 3


WORKFLOW = EXAMPLES / "review-bot" / ".github" / "workflows" / "rlm-review.yml"
REVIEW_STEP = "Review the pull request and comment"


def test_review_workflow_runs_rlm_mcp_review_and_comments_with_gh() -> None:
    workflow = WORKFLOW.read_text()
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


def _workflow_step_script(name: str) -> str:
    """The ``run:`` block of the workflow step called ``name``, as the runner would see it."""
    lines = WORKFLOW.read_text().splitlines()
    at = lines.index(f"      - name: {name}")
    run = next(i for i in range(at, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run]) - len(lines[run].lstrip())
    body: list[str] = []
    for line in lines[run + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    script = textwrap.dedent("\n".join(body)) + "\n"
    script = script.replace("${{ github.base_ref }}", "main")
    script = script.replace("${{ github.event.pull_request.number }}", "7")
    assert "${{" not in script
    return script


def _run_bot(kind: str, repo: Path, env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    """Run the review bot (the script, or the workflow's step) with a ``gh`` that records
    the comment; returns the exit status and the comment posted."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$GH_ARGS"\n'
        "while [ $# -gt 0 ]; do\n"
        '  if [ "$1" = --body-file ]; then cat "$2" > "$GH_COMMENT"; fi\n'
        '  if [ "$1" = --body ]; then printf %s "$2" > "$GH_COMMENT"; fi\n'
        "  shift\n"
        "done\n"
    )
    gh.chmod(0o755)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    env = env | {
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        "GH_COMMENT": str(tmp_path / "comment.md"),
        "GH_ARGS": str(tmp_path / "gh-args"),
        "GH_TOKEN": "test-token",
        "PR_NUMBER": "7",
        "REVIEW_BASE": "origin/main",
        "RUNNER_TEMP": str(runner_temp),
    }
    if kind == "script":
        argv = ["bash", str(EXAMPLES / "review-bot" / "review.sh")]
    else:
        step = tmp_path / "step.sh"
        step.write_text(_workflow_step_script(REVIEW_STEP))
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(step)]
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=90)
    assert (tmp_path / "gh-args").read_text().split()[:3] == ["pr", "comment", "7"], proc.stderr
    return proc.returncode, (tmp_path / "comment.md").read_text()


@pytest.fixture
def pr_repo(repo: Path) -> Path:
    """A checkout with origin/main at the base commit and an uncommitted change to review."""
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / "calc" / "ops.py").write_text("def divide(a, b):\n    return a / 0\n")
    return repo


BOTS = ("script", "workflow")


@pytest.mark.parametrize("kind", BOTS)
def test_review_bot_comments_the_findings_and_fails_on_an_error_finding(
    kind: str, tmp_path: Path, llm: LoopbackLLMServer, pr_repo: Path
) -> None:
    llm.responder = lambda body: code('FINAL("calc/ops.py:2: error: always divides by zero")')
    status, comment = _run_bot(kind, pr_repo, _env(tmp_path, llm), tmp_path)
    assert status == 1, comment
    assert "- **error** `calc/ops.py:2`: always divides by zero" in comment
    assert "review failed" not in comment


@pytest.mark.parametrize("kind", BOTS)
def test_review_bot_says_no_findings_only_on_the_models_explicit_marker(
    kind: str, tmp_path: Path, llm: LoopbackLLMServer, pr_repo: Path
) -> None:
    llm.responder = lambda body: code('FINAL("NO FINDINGS")')
    status, comment = _run_bot(kind, pr_repo, _env(tmp_path, llm), tmp_path)
    assert status == 0, comment
    assert "No findings." in comment
    assert "review failed" not in comment


@pytest.mark.parametrize("kind", BOTS)
@pytest.mark.parametrize(
    ("failure", "exit_code", "reason"),
    [
        ("bad-key", 3, "Incorrect API key provided"),
        ("no-verdict", 4, "neither findings nor the NO FINDINGS marker"),
        ("no-model", 3, "RLM_MODEL"),
    ],
)
def test_review_bot_posts_review_failed_and_fails_the_job_when_the_review_fails(
    kind: str,
    failure: str,
    exit_code: int,
    reason: str,
    tmp_path: Path,
    llm: LoopbackLLMServer,
    pr_repo: Path,
) -> None:
    env = _env(tmp_path, llm)
    if failure == "bad-key":
        llm.responder = lambda body: Reply.error(401, "Incorrect API key provided")
    elif failure == "no-verdict":
        llm.responder = lambda body: code('FINAL("Looks good to me overall.")')
    else:
        del env["RLM_MODEL"]
    status, comment = _run_bot(kind, pr_repo, env, tmp_path)
    assert status == exit_code, comment
    assert "review failed" in comment
    assert reason in comment
    assert "No findings" not in comment


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
