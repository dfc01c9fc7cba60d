"""Threads model code leaves running: none may outlive its cell, or burn CPU after it."""

from __future__ import annotations

import os

import pytest

from tests.polling import wait_until
from tests.sandbox.sandbox_helpers import MakeSession, assert_usable, wait_until_idle

SPIN = "def spin():\n    while True:\n        pass\n"


@pytest.mark.parametrize(
    "start",
    [
        "threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()",
        SPIN + "threading.Thread(target=spin, daemon=True).start()",
        SPIN + "import _thread\n_thread.start_new_thread(spin, ())",
    ],
    ids=["fault-report-lambda", "daemon-spin", "raw-_thread-spin"],
)
def test_a_busy_thread_left_by_a_cell_is_stopped_and_the_worker_goes_idle(
    make_session: MakeSession, start: str
) -> None:
    session = make_session()
    session.exec("kept = 'yes'")
    result = session.exec("import threading\n" + start + "\n'returned'")
    pid = session.worker_pid
    assert pid is not None
    wait_until_idle(pid)
    assert result.value == "'returned'" and result.error is None, result
    assert not result.restarted
    assert "1 thread(s)" in result.stderr and "were stopped" in result.stderr
    assert session.exec("kept").value == "'yes'"


def test_threads_that_finish_within_the_grace_are_not_reported(make_session: MakeSession) -> None:
    session = make_session()
    code = (
        "import threading\n"
        "go = threading.Event()\n"
        "threading.Thread(target=go.wait).start()\n"
        "go.set()\n"
        "'ok'"
    )
    result = session.exec(code)
    assert result.value == "'ok'" and result.stderr == "" and not result.restarted


def test_a_thread_pool_left_open_is_shut_down_and_variables_are_kept(
    make_session: MakeSession,
) -> None:
    session = make_session()
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(4)\n"
        "list(pool.map(abs, [-1, -2, -3, -4, -5, -6]))"
    )
    result = session.exec(code)
    assert result.value == "[1, 2, 3, 4, 5, 6]" and not result.restarted
    assert "were stopped" in result.stderr and "ThreadPoolExecutor" in result.stderr
    later = session.exec("pool.submit(abs, -1)")
    assert later.error is not None and "after shutdown" in later.error
    assert not later.restarted


def test_a_thread_blocked_outside_python_gets_the_worker_recycled(
    make_session: MakeSession,
) -> None:
    session = make_session()
    session.exec("lost = 1")
    old_pid = session.worker_pid
    code = (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n'value'"
    )
    result = session.exec(code)
    assert result.restarted and not result.timed_out
    assert result.value == "'value'"
    assert result.error is not None
    assert "could not be stopped" in result.error and "ALL VARIABLES" in result.error
    assert session.worker_pid != old_pid
    wait_until(lambda: not os.path.exists(f"/proc/{old_pid}"), timeout=5.0)
    assert session.exec("lost").error is not None
    assert_usable(session)


def test_a_busy_thread_that_swallows_the_stop_request_gets_the_worker_recycled(
    make_session: MakeSession,
) -> None:
    session = make_session()
    old_pid = session.worker_pid
    assert old_pid is not None
    code = (
        "import threading\n"
        "def stubborn():\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
        "threading.Thread(target=stubborn, daemon=True).start()"
    )
    result = session.exec(code)
    assert result.restarted
    assert result.error is not None and "could not be stopped" in result.error
    wait_until(lambda: not os.path.exists(f"/proc/{old_pid}"), timeout=5.0)
    pid = session.worker_pid
    assert pid is not None
    wait_until_idle(pid)
    assert_usable(session)


def test_threads_started_while_the_host_reads_a_variable_are_stopped_too(
    make_session: MakeSession,
) -> None:
    session = make_session()
    code = (
        "import threading\n"
        "class Sneaky:\n"
        "    def __repr__(self):\n"
        "        def spin():\n"
        "            while True:\n"
        "                pass\n"
        "        threading.Thread(target=spin, daemon=True).start()\n"
        "        return 'sneaky'\n"
        "thing = Sneaky()"
    )
    session.exec(code)
    assert session.get("thing") == "sneaky"
    pid = session.worker_pid
    assert pid is not None
    wait_until_idle(pid)
    assert session.exec("thing").value == "sneaky"
