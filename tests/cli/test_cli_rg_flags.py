"""`rlm-mcp search` with ripgrep's habits: its flags, globs, colours, PATH defaulting to `.`,
a first search that does not wait for the cold index, and Ctrl-C honoured at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.cli_helpers import isolated_env, run_cli, write_tree
from tests.polling import poll, wait_until

ROOT = Path(__file__).resolve().parents[2]

TREE = {
    "pkg/ops.py": "def divide(a, b):\n    return a / b\n\nx = dividend\n",
    "pkg/ops.pyi": "def divide(a: int, b: int) -> float: ...\n",
    "pkg/data.json": '{"divide": true}\n',
    "tests/test_ops.py": "from pkg.ops import divide\n",
    "README.md": "# divide things\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tree", TREE)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def _out(*args: str, env: dict[str, str], cwd: Path | None = None) -> str:
    proc = run_cli("search", *args, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_path_defaults_to_the_current_directory(tree: Path, env: dict[str, str]) -> None:
    assert _out("dividend", env=env, cwd=tree) == "pkg/ops.py:4:x = dividend\n"
    assert _out("dividend", "pkg", env=env, cwd=tree) == "ops.py:4:x = dividend\n", "rg's order"
    assert _out(str(tree), "dividend", env=env) == "pkg/ops.py:4:x = dividend\n"


def test_files_with_matches_count_and_word_regexp(tree: Path, env: dict[str, str]) -> None:
    assert _out("-l", "divide", env=env, cwd=tree).splitlines() == [
        "README.md",
        "pkg/data.json",
        "pkg/ops.py",
        "pkg/ops.pyi",
        "tests/test_ops.py",
    ]
    assert "pkg/ops.py:2\n" in _out("-c", "divide", env=env, cwd=tree)
    assert "pkg/ops.py:1\n" in _out("-c", "-w", "divide", env=env, cwd=tree)
    counts = json.loads(_out("-c", "--json", "divide", env=env, cwd=tree))["counts"]
    assert counts["pkg/ops.py"] == 2


def test_several_patterns_and_asymmetric_context(tree: Path, env: dict[str, str]) -> None:
    out = _out(
        "-e", "def divide", "-e", "dividend", "-A", "1", "-g", "pkg/ops.py", env=env, cwd=tree
    )
    assert out == (
        "pkg/ops.py:1:def divide(a, b):\npkg/ops.py-2-    return a / b\n--\n"
        "pkg/ops.py:4:x = dividend\n"
    )
    before = _out("-B", "1", "-F", "x = dividend", env=env, cwd=tree)
    assert before == "pkg/ops.py-3-\npkg/ops.py:4:x = dividend\n"


def test_globs_repeat_negate_and_expand_braces(tree: Path, env: dict[str, str]) -> None:
    both = _out("-l", "divide", "-g", "*.{py,pyi}", "-g", "!tests/**", env=env, cwd=tree)
    assert both.splitlines() == ["pkg/ops.py", "pkg/ops.pyi"]
    negated = _out("-l", "divide", "-g", "!*.py", env=env, cwd=tree)
    assert negated.splitlines() == ["README.md", "pkg/data.json", "pkg/ops.pyi"]
    two = _out("-l", "divide", "--glob", "*.md", "--glob", "*.json", env=env, cwd=tree)
    assert two.splitlines() == ["README.md", "pkg/data.json"], "a second --glob adds"


def test_file_types_and_the_type_list(tree: Path, env: dict[str, str]) -> None:
    assert _out("-l", "divide", "-t", "md", "-t", "json", env=env, cwd=tree).splitlines() == [
        "README.md",
        "pkg/data.json",
    ]
    assert "tests/test_ops.py" not in _out(
        "-l", "divide", "-t", "py", "-g", "!tests", env=env, cwd=tree
    )
    assert _out("-l", "divide", "-T", "py", env=env, cwd=tree).splitlines() == [
        "README.md",
        "pkg/data.json",
    ]
    types = run_cli("search", "--type-list", env=env)
    assert types.returncode == 0 and "py: *.py, *.pyi" in types.stdout
    assert "rust: *.rs" in types.stdout
    bad = run_cli("search", "-t", "nope", "divide", env=env, cwd=tree)
    assert bad.returncode == 2 and "--type-list" in bad.stderr


def test_colour_is_ripgreps_when_asked_and_never_by_default_in_a_pipe(
    tree: Path, env: dict[str, str]
) -> None:
    plain = _out("dividend", env=env, cwd=tree)
    assert "\x1b[" not in plain
    coloured = _out("--color", "always", "dividend", env=env, cwd=tree)
    assert coloured == "\x1b[35mpkg/ops.py\x1b[0m:\x1b[32m4\x1b[0m:x = \x1b[1;31mdividend\x1b[0m\n"
    assert "\x1b[" not in _out("--color", "never", "dividend", env=env, cwd=tree)


def _tty_stdout(*args: str, env: dict[str, str], cwd: Path) -> str:
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rlm_mcp", "search", *args],
            env=env, cwd=cwd, stdout=follower, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert proc.returncode == 0
        return b"".join(chunks).decode()
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)


def test_colour_on_a_terminal_by_default_unless_no_color(tree: Path, env: dict[str, str]) -> None:
    assert "\x1b[1;31mdividend\x1b[0m" in _tty_stdout("dividend", env=env, cwd=tree)
    assert "\x1b[" not in _tty_stdout("dividend", env=dict(env, NO_COLOR="1"), cwd=tree)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_first_search_of_a_big_cold_tree_answers_from_a_scan_and_indexes_behind(
    tmp_path: Path, env: dict[str, str]
) -> None:
    files = {f"pkg{i % 20}/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(150)}
    files["pkg3/target.py"] = "def needle_here():\n    return 'needle'\n"
    root = write_tree(tmp_path / "big", files)
    first = run_cli("search", "needle", "--max-results", "5", env=env, cwd=root)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        "pkg3/target.py:1:def needle_here():\npkg3/target.py:2:    return 'needle'\n"
    )
    note = re.search(r"not indexed yet: answered from a direct scan of ([\d,]+) files \((\w+)\)"
                     r"; indexing in the background \(pid (\d+)\)", first.stderr)  # fmt: skip
    assert note, first.stderr
    assert note.group(1) == "151"
    indexer = int(note.group(3))
    wait_until(lambda: _gone(indexer), 120, "the background index to end", interval=0.05)
    fresh = dict(env, RLM_CACHE_DIR=str(tmp_path / "other-cache"))
    regex = run_cli("search", "-w", r"needle_\w+|f10\d", env=fresh, cwd=root)
    assert regex.returncode == 0, regex.stderr
    assert regex.stdout.splitlines() == [
        "pkg0/m100.py:1:def f100():",
        "pkg1/m101.py:1:def f101():",
        "pkg2/m102.py:1:def f102():",
        "pkg3/m103.py:1:def f103():",
        "pkg3/target.py:1:def needle_here():",
        "pkg4/m104.py:1:def f104():",
        "pkg5/m105.py:1:def f105():",
        "pkg6/m106.py:1:def f106():",
        "pkg7/m107.py:1:def f107():",
        "pkg8/m108.py:1:def f108():",
        "pkg9/m109.py:1:def f109():",
    ]
    pid = re.search(r"pid (\d+)", regex.stderr)
    assert "direct scan" in regex.stderr and pid
    indexer = int(pid.group(1))
    wait_until(lambda: _gone(indexer), 120, "the second background index to end", interval=0.05)
    again = run_cli("search", "needle", "--json", env=env, cwd=root)
    assert again.returncode == 0 and "direct scan" not in again.stderr
    payload = json.loads(again.stdout)
    assert payload["source"] == "index"
    assert [h["line"] for h in payload["hits"]] == [1, 2]


def _group(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out


def _helper_running(pgid: int) -> bool:
    for pid in _group(pgid):
        try:
            if b"serve_fd" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_a_regex_that_could_backtrack_exponentially_is_not_run_again_to_highlight(
    tree: Path, env: dict[str, str]
) -> None:
    write_tree(tree, {"slow.txt": "ab " + "a" * 40 + "\n"})
    proc = run_cli("search", "--color", "always", "(a+)+b", "-g", "slow.txt", env=env, cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "\x1b[35mslow.txt\x1b[0m:\x1b[32m1\x1b[0m:ab " + "a" * 40 + "\n"


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "first-search-scan"])
def test_ctrl_c_during_a_catastrophic_regex_ends_the_search_at_once(
    tmp_path: Path, env: dict[str, str], indexed: bool
) -> None:
    files = {"a.txt": "a" * 60 + "!\n", "b.py": "x = 1\n"}
    if not indexed:
        files.update({f"d{i % 10}/f{i}.py": f"v = {i}\n" for i in range(100)})
    root = write_tree(tmp_path / "slow", files)
    if indexed:
        assert run_cli("index", str(root), env=env).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", "search", "(a+)+$", str(root)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:

        def helper_started() -> bool:
            assert proc.poll() is None, proc.communicate()
            return _helper_running(proc.pid)

        wait_until(helper_started, 30, "the grep helper to start", interval=0.02)
        time.sleep(0.3)  # let the helper start on the regex
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=5)
        took = time.monotonic() - sent
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert took < 3, f"Ctrl-C took {took:.2f}s (the grep timeout is 10s)"
        poll(lambda: not _group(proc.pid), 10, interval=0.05)
        assert _group(proc.pid) == [], "the grep helper outlived the search"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
