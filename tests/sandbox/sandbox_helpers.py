"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sandbox import Session
from tests.polling import poll

MakeSession = Callable[..., Session]


def assert_usable(session: Session) -> None:
    """The session answers a fresh probe (possibly after a respawn)."""
    result = session.exec("probe_value = 40 + 2\nprobe_value")
    assert result.error is None or "restarted" in result.error
    assert result.value == "42"


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and all its descendants, read from ``/proc``.

    The whole tree is summed because under bubblewrap the host-side pid is bubblewrap's and
    the worker is one of its descendants.
    """
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = int(fields[11]) + int(fields[12])
    tree = {pid}
    grew = True
    while grew:
        children = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(cpu.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, window: float = 0.3, timeout: float = 5.0) -> None:
    """Wait until the process tree used under 10% of a core over ``window`` seconds.

    Fails after ``timeout`` seconds with the last window's CPU share.
    """
    start, start_cpu = time.monotonic(), tree_cpu_seconds(pid)
    share = 0.0

    def idle() -> bool:
        nonlocal start, start_cpu, share
        now, used = time.monotonic(), tree_cpu_seconds(pid)
        if now - start < window:
            return False
        share = (used - start_cpu) / (now - start)
        start, start_cpu = now, used
        return share < 0.1

    if not poll(idle, timeout, interval=0.02):
        raise AssertionError(f"worker still uses {share:.0%} of a core after {timeout} s")
