"""index and search as real subprocesses against a scripted loopback model."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run_cli


def test_index_prints_a_summary_and_is_quiet_on_stderr_without_a_terminal(
    repo: Path, env: dict[str, str]
) -> None:
    proc = run_cli("index", str(repo), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"indexed {repo}: 3 files" in proc.stdout
    assert "languages: " in proc.stdout and "python 2" in proc.stdout
    assert "skipped: none" in proc.stdout
    assert proc.stderr == ""


def test_index_json_reports_files_languages_and_skips(repo: Path, env: dict[str, str]) -> None:
    (repo / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    proc = run_cli("index", str(repo), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"] == 3
    assert report["languages"]["python"] == 2
    assert report["skipped"] == {"binary": 1}
    assert report["root"] == str(repo)


def test_index_of_a_missing_path_exits_1_naming_it(tmp_path: Path, env: dict[str, str]) -> None:
    proc = run_cli("index", str(tmp_path / "nowhere"), env=env)
    assert proc.returncode == 1
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_search_prints_path_line_text(repo: Path, env: dict[str, str]) -> None:
    proc = run_cli("search", str(repo), r"def \w+", "--glob", "*.py", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "calc/ops.py:1:def divide(a, b):",
        "calc/ops.py:6:def add(a, b):",
    ]


def test_search_ignore_case_and_max_results(repo: Path, env: dict[str, str]) -> None:
    proc = run_cli("search", str(repo), "CALC", "-i", "--max-results", "1", env=env)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert "--max-results" in proc.stderr


def test_search_without_matches_exits_1_and_bad_regex_exits_2(
    repo: Path, env: dict[str, str]
) -> None:
    assert run_cli("search", str(repo), "no_such_thing_here", env=env).returncode == 1
    bad = run_cli("search", str(repo), "(unclosed", env=env)
    assert bad.returncode == 2
    assert "invalid regex" in bad.stderr
