"""Each isolation layer on its own: applied alone in a fresh interpreter, then inside sessions.

The single-layer checks run the worker's lockdown functions in a throwaway ``python -c`` so a
failure points at exactly one layer; the session checks disable bubblewrap so that a denial can
only come from the in-process layers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import detect_isolation
from tests.sandbox.sandbox_helpers import MakeSession

REPO = Path(__file__).resolve().parents[2]


def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh interpreter that can import the sandbox package."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n{code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def needs(layer: str) -> None:
    if not getattr(detect_isolation(), layer):
        pytest.skip(f"{layer} not available here")


def test_rlimits_alone_turn_a_memory_bomb_into_memory_error() -> None:
    needs("rlimits")
    out = run_isolated(
        "from sandbox import _lockdown as w\n"
        "w.apply_rlimits(512 << 20, 60, 32)\n"
        "try:\n    bytearray(1 << 30)\nexcept MemoryError:\n    print('memory-error')\n"
        "try:\n    open('/tmp/x-rlimit-probe', 'w').write('x' * 10); print('wrote')\n"
        "except OSError as e:\n    print('fsize', e.errno)\n"
    )
    assert out.splitlines()[0] == "memory-error"


def test_no_new_privs_alone_is_reported_by_the_kernel() -> None:
    needs("no_new_privs")
    out = run_isolated(
        "from sandbox import _lockdown as w\n"
        "w._prctl(w.PR_SET_NO_NEW_PRIVS, 1)\n"
        "print(w._prctl(w.PR_GET_NO_NEW_PRIVS))"
    )
    assert out == "1"


def test_landlock_alone_denies_reads_outside_and_all_writes(tmp_path: Path) -> None:
    needs("landlock")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("secret")
    out = run_isolated(
        "import socket\n"
        "from sandbox import _lockdown as w\n"
        "w._prctl(w.PR_SET_NO_NEW_PRIVS, 1)\n"
        f"w.apply_landlock(w.readable_system_paths() + [{str(allowed)!r}])\n"
        f"print(open({str(allowed / 'ok.txt')!r}).read())\n"
        f"for path, mode in [({str(tmp_path / 'secret.txt')!r}, 'r'), "
        f"({str(allowed / 'new.txt')!r}, 'w'), ('/etc/passwd', 'r')]:\n"
        "    try:\n        open(path, mode); print('opened')\n"
        "    except PermissionError:\n        print('denied')\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('127.0.0.1', 9)); print('connected')\n"
        "except PermissionError:\n    print('tcp-denied')\n"
        "except OSError as e:\n    print('tcp-other', e)\n"
    )
    lines = out.splitlines()
    assert lines[:4] == ["fine", "denied", "denied", "denied"]
    if detect_isolation().landlock_abi >= 4:
        assert lines[4] == "tcp-denied"


def test_seccomp_alone_denies_process_and_socket_syscalls_but_allows_threads() -> None:
    needs("seccomp")
    out = run_isolated(
        "import os, socket, threading, signal, resource\n"
        "from sandbox import _lockdown as w\n"
        "w._prctl(w.PR_SET_NO_NEW_PRIVS, 1)\n"
        "w.apply_seccomp()\n"
        "for name, fn in [('fork', os.fork), ('socket', socket.socket), "
        "('execv', lambda: os.execv('/bin/true', ['true'])), "
        "('setrlimit', lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (10, 10))), "
        "('kill-parent', lambda: os.kill(os.getppid(), 0))]:\n"
        "    try:\n        fn(); print(name, 'allowed')\n"
        "    except (PermissionError, ValueError):\n        print(name, 'denied')\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join(); print('threads ok')\n"
        "got = []\n"
        "signal.signal(signal.SIGUSR2, lambda *a: got.append(1))\n"
        "os.kill(os.getpid(), signal.SIGUSR2); print('self-signal', got)\n"
        "print('getrlimit', resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 0)\n"
    )
    assert out.splitlines() == [
        "fork denied",
        "socket denied",
        "execv denied",
        "setrlimit denied",
        "kill-parent denied",
        "threads ok",
        "self-signal [1]",
        "getrlimit True",
    ]


def test_without_bwrap_landlock_still_hides_files_the_namespace_would_hide(
    make_session: MakeSession,
) -> None:
    needs("landlock")
    session = make_session(use_bwrap=False)
    assert not session.isolation.bwrap and session.isolation.landlock
    result = session.exec("open('/etc/passwd').read()")
    assert result.error is not None and "PermissionError" in result.error
    result = session.exec("import os\nos.fork()")
    assert result.error is not None and "PermissionError" in result.error


def test_bwrap_runs_the_worker_unprivileged_in_fresh_namespaces(
    make_session: MakeSession,
) -> None:
    needs("bwrap")
    session = make_session(use_bwrap=True)
    assert session.isolation.bwrap
    result = session.exec("import os, socket\nos.getuid(), os.getpid(), socket.gethostname()")
    assert result.value == "(65534, 2, 'sandbox')"
    assert session.exec("import os\nos.path.exists('/etc/passwd')").value == "False"
