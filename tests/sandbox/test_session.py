"""Functional behaviour of sandbox sessions: REPL semantics, host calls, data, lifecycle."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import sandbox.session as session_module
from sandbox import (
    ExecResult,
    IsolationReport,
    SandboxError,
    SandboxUnavailableError,
    Session,
    SessionConfig,
    detect_isolation,
)
from tests.sandbox.sandbox_helpers import MakeSession, assert_usable


def test_variables_persist_between_execs(session: Session) -> None:
    assert session.exec("x = 20").error is None
    assert session.exec("x * 2 + 2").value == "42"


def test_trailing_expression_value_is_shown_like_a_notebook(session: Session) -> None:
    result = session.exec("a = [1, 2]\na + [3]")
    assert result.value == "[1, 2, 3]"
    assert session.exec("None").value is None
    assert session.exec("y = 1").value is None


def test_stdout_and_stderr_are_captured_separately(session: Session) -> None:
    result = session.exec("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_exceptions_come_back_as_traceback_text(session: Session) -> None:
    result = session.exec("def f():\n    return 1 / 0\nf()")
    assert result.error is not None
    assert "ZeroDivisionError: division by zero" in result.error
    assert "return 1 / 0" in result.error
    assert "_worker.py" not in result.error
    assert not result.restarted


def test_syntax_errors_are_reported_without_running_anything(session: Session) -> None:
    result = session.exec("x = 1\ndef (:")
    assert result.error is not None and "SyntaxError" in result.error
    assert session.get("x") is None


def test_output_beyond_the_limit_is_truncated_with_a_marker(make_session: MakeSession) -> None:
    session = make_session(output_limit=100)
    result = session.exec("print('x' * 1000)")
    assert result.truncated
    assert result.stdout.startswith("x" * 100)
    assert "901 more characters not shown" in result.stdout


def test_host_functions_are_callable_including_dotted_names(make_session: MakeSession) -> None:
    session = make_session({"add": lambda a, b: a + b, "repo.grep": lambda p, n=1: [p] * n})
    assert session.exec("add(2, 3)").value == "5"
    assert session.exec("repo.grep('foo', n=2)").value == "['foo', 'foo']"


def test_host_exceptions_arrive_as_matching_python_exceptions(
    make_session: MakeSession,
) -> None:
    class QuotaExceeded(Exception):
        pass

    def fail(kind: str) -> None:
        errors: dict[str, Exception] = {
            "value": ValueError("bad value"),
            "key": KeyError("k"),
            "timeout": TimeoutError("slow"),
            "custom": QuotaExceeded("over quota"),
        }
        raise errors[kind]

    session = make_session({"fail": fail})
    code = (
        "def catch(kind):\n"
        "    try:\n"
        "        fail(kind)\n"
        "    except Exception as e:\n"
        "        return type(e).__name__, isinstance(e, RuntimeError), str(e)\n"
        "[catch(k) for k in ('value', 'key', 'timeout', 'custom')]"
    )
    assert session.exec(code).value == repr(
        [
            ("ValueError", False, "bad value"),
            ("KeyError", False, "'k'"),
            ("TimeoutError", False, "slow"),
            ("QuotaExceeded", True, "over quota"),
        ]
    )


def test_twenty_concurrent_host_calls_from_worker_threads_overlap_on_the_host(
    make_session: MakeSession,
) -> None:
    barrier = threading.Barrier(20, timeout=5)
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        barrier.wait()
        with lock:
            active -= 1
        return i * i

    session = make_session({"slow": slow}, exec_timeout=10.0, max_concurrent_host_calls=20)
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(20) as pool:\n"
        "    out = list(pool.map(slow, range(20)))\n"
        "sum(out)"
    )
    result = session.exec(code)
    assert result.error is None, result.error
    assert result.value == str(sum(i * i for i in range(20)))
    assert peak == 20


def test_lazy_text_is_bound_only_when_referenced_and_not_copied_per_exec(
    make_session: MakeSession, tmp_path: Path
) -> None:
    data = tmp_path / "context.txt"
    line = "0123456789abcdef" * 4 + "\n"
    with data.open("w") as fh:
        fh.write(line * (100 * 1024 * 1024 // len(line)))
    size = data.stat().st_size
    session = make_session(lazy_text={"context": data}, exec_timeout=10.0)
    assert session.exec("x = 'context'\n'context' in globals()").value == "False"
    first = session.exec("n = len(context)\nfirst_id = id(context)\nn")
    assert first.value == str(size)
    started = time.monotonic()
    second = session.exec("id(context) == first_id, len(context)")
    assert second.value == f"(True, {size})"
    assert time.monotonic() - started < first.duration + 0.5


def test_lazy_text_is_rebound_after_deletion_from_the_cached_text(
    make_session: MakeSession, tmp_path: Path
) -> None:
    data = tmp_path / "ctx.txt"
    data.write_text("héllo")
    session = make_session(lazy_text={"ctx": data})
    assert session.exec("ctx[:2]").value == "'hé'"
    assert session.exec("del ctx").error is None
    assert session.exec("ctx.upper()").value == "'HÉLLO'"


def test_reserved_names_are_restored_after_every_exec(make_session: MakeSession) -> None:
    session = make_session(prelude="def helper():\n    return 'ok'\n", reserved={"helper"})
    assert session.exec("helper = 5\nhelper").value == "5"
    assert session.exec("helper()").value == "'ok'"


def test_prelude_can_use_host_functions(make_session: MakeSession) -> None:
    session = make_session({"llm": lambda q: q.upper()}, prelude="def ask(q):\n    return llm(q)\n")
    assert session.exec("ask('hi')").value == "'HI'"


def test_get_returns_json_values_repr_fallback_and_none_when_absent(session: Session) -> None:
    session.exec("d = {'a': [1, 2.5, None, True]}\nobj = object()\nbig = 'x' * 1000")
    assert session.get("d") == {"a": [1, 2.5, None, True]}
    assert str(session.get("obj")).startswith("<object object")
    assert session.get("missing") is None
    short = session.get("big", max_bytes=100)
    assert isinstance(short, str) and "truncated" in short


def test_interrupt_stops_a_running_exec_and_keeps_state(make_session: MakeSession) -> None:
    started = threading.Event()
    session = make_session({"started": started.set}, exec_timeout=30.0)
    session.exec("kept = 7")
    results: list[ExecResult] = []
    runner = threading.Thread(
        target=lambda: results.append(session.exec("started()\nimport time\ntime.sleep(60)"))
    )
    runner.start()
    assert started.wait(5)
    t0 = time.monotonic()
    session.interrupt()
    runner.join(5)
    assert results and time.monotonic() - t0 < 2
    assert results[0].error is not None and "KeyboardInterrupt" in results[0].error
    assert not results[0].restarted
    assert session.exec("kept").value == "7"


def test_interrupt_kills_and_respawns_code_that_ignores_it(make_session: MakeSession) -> None:
    started = threading.Event()
    session = make_session({"started": started.set}, exec_timeout=30.0)
    code = (
        "while True:\n"
        "    try:\n"
        "        started()\n"
        "        while True: pass\n"
        "    except BaseException: pass"
    )
    results: list[ExecResult] = []
    runner = threading.Thread(target=lambda: results.append(session.exec(code)))
    runner.start()
    assert started.wait(5)
    t0 = time.monotonic()
    session.interrupt()
    runner.join(5)
    assert results and time.monotonic() - t0 < 3
    assert results[0].restarted
    assert_usable(session)


def test_hard_kill_respawns_with_a_clear_message(session: Session) -> None:
    session.exec("lost = 1")
    result = session.exec(
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile 1: pass"
    )
    assert result.restarted and result.timed_out
    assert result.error is not None and "ALL VARIABLES" in result.error
    assert session.restarts == 1
    assert session.get("lost") is None
    assert_usable(session)


def test_close_leaves_no_threads_behind(make_session: MakeSession) -> None:
    before = set(threading.enumerate())
    session = make_session({"f": lambda: 1})
    session.exec("f()")
    session.close()
    assert set(threading.enumerate()) <= before
    with pytest.raises(SandboxError):
        session.exec("1")


def test_context_manager_starts_and_closes() -> None:
    with Session(SessionConfig(), {}) as session:
        assert session.exec("1 + 1").value == "2"
    with pytest.raises(SandboxError):
        session.exec("1")


def test_exec_is_serialised_across_threads(session: Session) -> None:
    session.exec("counter = 0")
    code = "for _ in range(1000):\n    counter += 1"
    threads = [threading.Thread(target=session.exec, args=(code,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert session.exec("counter").value == "4000"


def test_host_environment_is_not_visible(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-secret")
    session = make_session()
    result = session.exec("import os\nsorted(os.environ)")
    assert result.value is not None
    assert "OPENAI_API_KEY" not in result.value
    assert "sk-fake" not in session.exec("str(os.environ)").value  # type: ignore[operator]


def test_root_is_readable_and_the_cwd(make_session: MakeSession, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    session = make_session(root=tmp_path)
    assert session.exec("open('a.txt').read()").value == "'hello'"


def test_isolation_level_matches_what_ci_expects() -> None:
    expected = os.environ.get("RLM_EXPECT_ISOLATION", "full")
    report = detect_isolation()
    assert report.level == expected, report.describe()
    if expected == "full":
        assert report.landlock and report.seccomp and report.rlimits and report.bwrap
        assert report.no_new_privs and report.landlock_abi >= 1


def test_worker_reports_the_layers_it_applied(session: Session) -> None:
    expected = os.environ.get("RLM_EXPECT_ISOLATION", "full")
    if expected == "full":
        assert session.isolation.level == "full", session.isolation.describe()
    assert session.exec("import os\nos.getuid() != 0").value == (
        "True" if session.isolation.bwrap else "False"
    )


def test_sessions_work_without_bubblewrap(make_session: MakeSession) -> None:
    if not detect_isolation().landlock:
        pytest.skip("needs landlock")
    session = make_session(use_bwrap=False)
    assert not session.isolation.bwrap
    assert session.isolation.landlock and session.isolation.seccomp
    assert_usable(session)


def test_start_refuses_when_core_layers_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = IsolationReport(rlimits=True, no_new_privs=True, landlock=False, seccomp=False)
    monkeypatch.setattr(session_module, "detect_isolation", lambda: weak)
    session = Session(SessionConfig(), {})
    with pytest.raises(SandboxUnavailableError, match="allow_unsafe") as info:
        session.start()
    assert "landlock" in str(info.value) and "seccomp" in str(info.value)
    session.close()


def test_allow_unsafe_runs_with_missing_layers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    weak = IsolationReport(rlimits=True)
    monkeypatch.setattr(session_module, "detect_isolation", lambda: weak)
    with Session(SessionConfig(allow_unsafe=True), {}) as session:
        assert session.exec("1").value == "1"
    assert any("UNSAFE" in r.message for r in caplog.records)


def test_isolation_report_describes_missing_layers() -> None:
    report = IsolationReport(rlimits=True, landlock=True, landlock_abi=3)
    assert report.level == "partial"
    assert report.missing == ("no_new_privs", "seccomp", "bwrap")
    assert "landlock=yes (abi 3)" in report.describe()
    assert IsolationReport().level == "none"


def test_host_function_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError):
        Session(SessionConfig(), {"bad name": lambda: None})


def test_stdlib_modules_not_preloaded_can_still_be_imported(session: Session) -> None:
    code = (
        "import random, hashlib, decimal, sqlite3, csv, fractions, heapq, bisect, zlib\n"
        "hashlib.sha256(b'x').hexdigest()[:8], str(decimal.Decimal('1.5') * 2)"
    )
    result = session.exec(code)
    assert result.error is None, result.error
    assert result.value == "('2d711642', '3.0')"


def test_a_readable_sqlite_file_can_be_queried(make_session: MakeSession, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "index.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (name text)")
        conn.execute("insert into t values ('alpha'), ('beta')")
    conn.close()
    session = make_session(readable_paths=(db,))
    code = (
        "import sqlite3\n"
        f"conn = sqlite3.connect('file:{db}?mode=ro', uri=True)\n"
        "[r[0] for r in conn.execute('select name from t order by name')]"
    )
    result = session.exec(code)
    assert result.error is None, result.error
    assert result.value == "['alpha', 'beta']"


def test_chained_exceptions_keep_their_context_in_the_traceback(session: Session) -> None:
    code = "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('wrapped') from e"
    error = session.exec(code).error
    assert error is not None
    assert "KeyError: 'k'" in error and "ValueError: wrapped" in error
    assert "direct cause" in error


def test_code_larger_than_the_message_limit_is_refused_without_running(
    make_session: MakeSession,
) -> None:
    session = make_session(max_message_bytes=64 * 1024)
    result = session.exec("x = 1\n" + "#" * 100_000)
    assert result.error is not None and "too large" in result.error
    assert not result.restarted
    assert session.get("x") is None


def test_a_failing_bubblewrap_launch_falls_back_to_the_in_process_layers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if not detect_isolation().landlock:
        pytest.skip("needs landlock")
    original = Session._bwrap_command

    def broken(self: Session, readable: list[str], cwd: str) -> list[str]:
        return [*original(self, readable, cwd)[:1], "--no-such-option", "--"]

    monkeypatch.setattr(Session, "_bwrap_command", broken)
    with Session(SessionConfig(), {}) as session:
        assert not session.isolation.bwrap and session.isolation.seccomp
        assert session.exec("1 + 1").value == "2"
    assert any("without" in r.message for r in caplog.records)


def test_asyncio_event_loops_work_inside_the_sandbox(session: Session) -> None:
    code = (
        "import asyncio\n"
        "async def main():\n"
        "    return sum(await asyncio.gather(*(asyncio.sleep(0, i) for i in range(5))))\n"
        "asyncio.run(main())"
    )
    result = session.exec(code)
    assert result.error is None, result.error
    assert result.value == "10"
