"""index and search as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.cli_helpers import run_cli, write_tree


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


def test_index_of_a_missing_path_exits_2_naming_it(tmp_path: Path, env: dict[str, str]) -> None:
    proc = run_cli("index", str(tmp_path / "nowhere"), env=env)
    assert proc.returncode == 2
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


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


def test_search_fixed_strings_match_regex_metacharacters_literally(
    repo: Path, env: dict[str, str]
) -> None:
    regex = run_cli("search", str(repo), "divide(add(", env=env)
    assert regex.returncode == 2 and "invalid regex" in regex.stderr
    fixed = run_cli("search", str(repo), "-F", "divide(add(", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout == "calc/cli.py:3:print(divide(add(1, 2), 3))\n"
    dots = run_cli("search", str(repo), "--fixed-strings", "a.b", env=env)
    assert dots.returncode == 1, "a.b must not match 'a / b' or 'a, b' as a regex would"


PAIRS = r"a, b|a [/+] b"


def test_search_reports_the_total_and_pages_with_offset(repo: Path, env: dict[str, str]) -> None:
    first = run_cli("search", str(repo), PAIRS, "--max-results", "2", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "calc/ops.py:1:def divide(a, b):",
        "calc/ops.py:3:    return a / b",
    ]
    assert (
        "showing hits 1-2 of 4; --offset 2 for the next page, or raise --max-results"
        in first.stderr
    )
    second = run_cli(
        "search", str(repo), PAIRS, "--max-results", "2", "--offset", "2", "--json", env=env
    )
    assert second.returncode == 0, second.stderr
    page = json.loads(second.stdout)
    assert page["hits"] == [
        {"path": "calc/ops.py", "line": 6, "text": "def add(a, b):"},
        {"path": "calc/ops.py", "line": 7, "text": "    return a + b"},
    ]
    assert page["total"] == 4 and page["offset"] == 2 and page["truncated"] is False
    assert page["total_is_lower_bound"] is False and page["index_version"] >= 1
    beyond = run_cli("search", str(repo), PAIRS, "--offset", "9", env=env)
    assert beyond.returncode == 0 and beyond.stdout == ""
    assert "no hits at --offset 9: there are 4" in beyond.stderr


def test_search_context_prints_surrounding_lines_like_ripgrep(
    repo: Path, env: dict[str, str]
) -> None:
    proc = run_cli("search", str(repo), "return", "-C", "1", "--glob", "calc/ops.py", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'calc/ops.py-2-    """Divide a by b."""',
        "calc/ops.py:3:    return a / b",
        "calc/ops.py-4-",
        "--",
        "calc/ops.py-6-def add(a, b):",
        "calc/ops.py:7:    return a + b",
    ]
    merged = run_cli("search", str(repo), "a", "-C", "2", "--glob", "calc/ops.py", env=env)
    lines = merged.stdout.splitlines()
    assert "calc/ops.py:3:    return a / b" in lines, "a hit inside another's context stays a hit"
    assert "--" not in lines
    as_json = run_cli("search", str(repo), "def add", "-C", "1", "--json", env=env)
    hit = json.loads(as_json.stdout)["hits"][0]
    assert hit["before"] == [""] and hit["after"] == ["    return a + b"]


def test_search_without_matches_says_which_files_were_skipped_and_how_to_include_them(
    repo: Path, env: dict[str, str]
) -> None:
    write_tree(
        repo,
        {
            "vendor/bundle.js": "var needle=1;" + "x" * 12_000 + "\n",
            "package-lock.json": '{"needle": "lock"}\n',
        },
    )
    (repo / "data.txt").write_text("needle\n" + ("y" * 99 + "\n") * 12_000)
    proc = run_cli("search", str(repo), "needle", env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr
    assert f"no matches in 3 indexed files of {repo}" in err
    assert "3 files not searched" in err
    assert "too_large 1: over 1,048,576 bytes; raise RLM_MAX_FILE_BYTES (e.g." in err
    assert "generated 1:" in err and "minified 1:" in err
    assert f"rlm-mcp search {repo / 'package-lock.json'} PATTERN" in err
    assert "Traceback" not in err

    bigger = run_cli("search", str(repo), "needle", env=dict(env, RLM_MAX_FILE_BYTES="4000000"))
    assert bigger.returncode == 0 and bigger.stdout == "data.txt:1:needle\n"
    named = run_cli("search", str(repo / "package-lock.json"), "needle", env=env)
    assert named.returncode == 0 and named.stdout == 'package-lock.json:1:{"needle": "lock"}\n'


def test_search_verbose_reports_skipped_files_even_with_hits(
    repo: Path, env: dict[str, str]
) -> None:
    (repo / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    quiet = run_cli("search", str(repo), "divide", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = run_cli("search", str(repo), "divide", "-v", env=env)
    assert loud.returncode == 0
    assert "1 file not searched" in loud.stderr and "binary 1" in loud.stderr
    only_py = run_cli("search", str(repo), "nothing_here", "--glob", "*.py", env=env)
    assert "not searched" not in only_py.stderr, "skips outside the glob are not mentioned"
