"""How many host calls one session may have in flight, and what happens to the rest."""

from __future__ import annotations

import json
import threading

import pytest

from sandbox import ExecResult, SessionConfig
from sandbox._frames import HEADER
from sandbox._hostcalls import HostCalls
from tests.polling import wait_until
from tests.sandbox.sandbox_helpers import MakeSession, assert_usable


def test_twelve_sandbox_threads_never_have_more_than_four_host_calls_in_flight(
    make_session: MakeSession,
) -> None:
    cap = 4
    cond = threading.Condition()
    active = peak = 0

    def probe(i: int) -> int:
        """Holds its slot until a call beyond the cap shows up, or for a short window."""
        nonlocal active, peak
        with cond:
            active += 1
            peak = max(peak, active)
            cond.notify_all()
            cond.wait_for(lambda: active > cap, timeout=0.2)
            active -= 1
        return i

    session = make_session({"probe": probe}, exec_timeout=10.0)
    code = (
        "import threading\n"
        "out = []\n"
        "def call(i):\n"
        "    out.append(probe(i))\n"
        "threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]\n"
        "for t in threads:\n"
        "    t.start()\n"
        "for t in threads:\n"
        "    t.join()\n"
        "sorted(out)"
    )
    result = session.exec(code)
    assert result.error is None, result.error
    assert result.value == str(list(range(12)))
    assert peak == cap
    assert SessionConfig().max_concurrent_host_calls == cap


def test_a_host_call_that_waits_longer_than_the_exec_timeout_for_a_slot_fails_clearly() -> None:
    sent: list[bytes] = []
    calls = HostCalls(sent.append, 10, 1 << 20, max_concurrent=1, slot_timeout=0.1)
    results: list[object] = []
    holder = threading.Thread(target=lambda: results.append(calls.call("slow", [], {})))
    holder.start()
    wait_until(lambda: len(sent) == 1, timeout=5.0)
    with pytest.raises(TimeoutError, match="max_concurrent_host_calls=1"):
        calls.call("fast", [], {})
    assert len(sent) == 1
    first = json.loads(sent[0][HEADER.size :])
    calls.deliver({"type": "result", "id": first["id"], "ok": True, "value": "slow done"})
    holder.join(5)
    assert results == ["slow done"]
    waiter = threading.Thread(target=lambda: results.append(calls.call("fast", [], {})))
    waiter.start()
    wait_until(lambda: len(sent) == 2, timeout=5.0)
    second = json.loads(sent[1][HEADER.size :])
    calls.deliver({"type": "result", "id": second["id"], "ok": True, "value": "fast done"})
    waiter.join(5)
    assert results == ["slow done", "fast done"]


def test_a_host_call_abandoned_by_a_timed_out_cell_keeps_its_slot_until_the_host_answers(
    make_session: MakeSession,
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow() -> str:
        entered.set()
        assert release.wait(5)
        return "slow"

    session = make_session(
        {"slow": slow, "fast": lambda: "fast"},
        max_concurrent_host_calls=1,
        exec_timeout=0.5,
    )
    first = session.exec("slow()")
    assert first.timed_out and not first.restarted
    assert entered.is_set() and not release.is_set()
    answer: list[ExecResult] = []
    runner = threading.Thread(target=lambda: answer.append(session.exec("fast()", timeout=5)))
    runner.start()
    try:
        runner.join(0.3)
        assert runner.is_alive(), "fast() ran while the abandoned call still held the slot"
    finally:
        release.set()
    runner.join(10)
    assert answer and answer[0].value == "'fast'", answer


def test_a_worker_that_bypasses_its_slots_gets_extra_calls_refused_by_the_host(
    make_session: MakeSession,
) -> None:
    release = threading.Event()
    lock = threading.Lock()
    started = finished = 0

    def hold() -> None:
        nonlocal started, finished
        with lock:
            started += 1
        assert release.wait(5)
        with lock:
            finished += 1

    session = make_session({"hold": hold, "ping": lambda: "pong"}, exec_timeout=5.0)
    code = (
        "import json, os, struct, sys\n"
        "frames = b''\n"
        "for i in range(12):\n"
        "    msg = json.dumps({'type': 'call', 'id': 10_000 + i, 'name': 'hold', "
        "'args': [], 'kwargs': {}}).encode()\n"
        "    frames += struct.pack('>I', len(msg)) + msg\n"
        "os.write(int(sys.argv[2]), frames)\n"
        "try:\n"
        "    print(ping())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)"
    )
    try:
        result = session.exec(code)
        wait_until(lambda: started == 4, timeout=5.0)
        assert "RuntimeError" in result.stdout and "max_concurrent_host_calls=4" in result.stdout
        assert started == 4
    finally:
        release.set()
    wait_until(lambda: finished == 4, timeout=5.0)
    assert_usable(session)
    assert started == 4
