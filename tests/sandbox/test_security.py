"""Escape and abuse attempts: each must fail, and the session and host must stay usable."""

from __future__ import annotations

import os
import platform
import select
import socket
import uuid
from pathlib import Path

import pytest

from sandbox import Session
from tests.sandbox.sandbox_helpers import MakeSession, assert_usable


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "main.py").write_text("print('hello')\n")
    return root


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("TOP-SECRET-VALUE")
    return path


@pytest.fixture
def repo_session(make_session: MakeSession, repo: Path) -> Session:
    session = make_session(root=repo)
    session.exec("marker = 'still here'")
    return session


def assert_state_kept(session: Session) -> None:
    result = session.exec("marker")
    assert result.value == "'still here'", result
    assert not result.restarted


def run_error(session: Session, code: str) -> str:
    result = session.exec(code)
    assert result.error is not None, result
    return result.error


# --- filesystem -----------------------------------------------------------------------


def test_writing_a_file_in_the_repository_fails(repo_session: Session, repo: Path) -> None:
    error = run_error(repo_session, f"open({str(repo / 'evil.py')!r}, 'w').write('x')")
    assert "PermissionError" in error or "OSError" in error
    assert not (repo / "evil.py").exists()
    assert (repo / "main.py").read_text() == "print('hello')\n"
    run_error(repo_session, "open('main.py', 'a').write('pwned')")
    assert (repo / "main.py").read_text() == "print('hello')\n"
    assert_state_kept(repo_session)


def test_writing_outside_the_repository_in_tmp_fails(repo_session: Session) -> None:
    target = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}"
    run_error(repo_session, f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()
    assert_state_kept(repo_session)


def test_reading_etc_passwd_fails(repo_session: Session) -> None:
    error = run_error(repo_session, "open('/etc/passwd').read()")
    assert "root:" not in error
    assert_state_kept(repo_session)


def test_reading_a_secret_outside_the_root_fails(repo_session: Session, secret: Path) -> None:
    result = repo_session.exec(f"open({str(secret)!r}).read()")
    assert result.error is not None
    assert "TOP-SECRET" not in (result.value or "") + result.stdout
    assert_state_kept(repo_session)


def test_reading_a_secret_through_a_symlink_in_the_repository_fails(
    make_session: MakeSession, repo: Path, secret: Path
) -> None:
    (repo / "innocent.txt").symlink_to(secret)
    session = make_session(root=repo)
    result = session.exec("open('innocent.txt').read()")
    assert result.error is not None
    assert "TOP-SECRET" not in (result.value or "") + result.stdout + result.error
    assert_usable(session)


def test_reading_the_hosts_environment_through_proc_fails(
    repo_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proc-secret")
    code = (
        "import os\n"
        "found = []\n"
        f"for pid in (os.getppid(), 1, {os.getpid()}):\n"
        "    try:\n"
        "        found.append(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as e:\n"
        "        found.append(type(e).__name__)\n"
        "found"
    )
    result = repo_session.exec(code)
    assert result.value is not None
    assert "sk-proc-secret" not in result.value
    assert "b'" not in result.value
    assert_state_kept(repo_session)


def test_creating_a_symlink_fails(repo_session: Session, repo: Path) -> None:
    run_error(repo_session, "import os\nos.symlink('/etc/passwd', 'link')")
    assert not (repo / "link").exists()
    assert_state_kept(repo_session)


def test_making_directories_and_deleting_files_fails(repo_session: Session, repo: Path) -> None:
    run_error(repo_session, "import os\nos.mkdir('newdir')")
    run_error(repo_session, "import os\nos.remove('main.py')")
    assert (repo / "main.py").exists() and not (repo / "newdir").exists()
    assert_state_kept(repo_session)


# --- network ----------------------------------------------------------------------------


def test_tcp_connect_to_a_loopback_server_fails(repo_session: Session) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)"
        run_error(repo_session, code)
        readable, _, _ = select.select([server], [], [], 0)
        assert readable == []
    finally:
        server.close()
    assert_state_kept(repo_session)


def test_udp_send_fails(repo_session: Session) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    try:
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.sendto(b'leak', ('127.0.0.1', {port}))"
        )
        run_error(repo_session, code)
        readable, _, _ = select.select([receiver], [], [], 0)
        assert readable == []
    finally:
        receiver.close()
    assert_state_kept(repo_session)


def test_unix_socket_connect_fails(make_session: MakeSession, tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(5)
    try:
        session = make_session(root=tmp_path)
        code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})"
        run_error(session, code)
        run_error(session, "import socket\nsocket.socketpair(socket.AF_INET)")
        readable, _, _ = select.select([server], [], [], 0)
        assert readable == []
    finally:
        server.close()
    assert_usable(session)


def test_binding_a_listening_socket_fails(repo_session: Session) -> None:
    run_error(repo_session, "import socket\nsocket.create_server(('127.0.0.1', 0))")
    assert_state_kept(repo_session)


# --- processes --------------------------------------------------------------------------


def test_subprocess_fails(repo_session: Session) -> None:
    error = run_error(repo_session, "import subprocess\nsubprocess.run(['/bin/true'])")
    assert "PermissionError" in error or "OSError" in error
    assert_state_kept(repo_session)


def test_os_system_does_not_run_a_shell(repo_session: Session) -> None:
    result = repo_session.exec("import os\nos.system('true')")
    assert result.value != "0"
    assert_state_kept(repo_session)


def test_os_execv_fails_and_the_process_is_not_replaced(repo_session: Session) -> None:
    run_error(repo_session, "import os\nos.execv('/usr/bin/true', ['true'])")
    assert_state_kept(repo_session)


def test_os_fork_fails(repo_session: Session) -> None:
    error = run_error(repo_session, "import os\nos.fork()")
    assert "PermissionError" in error
    assert_state_kept(repo_session)


def test_a_fork_bomb_is_stopped(repo_session: Session) -> None:
    code = "import os\nwhile True:\n    os.fork()"
    error = run_error(repo_session, code)
    assert "PermissionError" in error
    run_error(repo_session, "import os\nos.posix_spawn('/usr/bin/true', ['true'], {})")
    assert_state_kept(repo_session)


def test_ctypes_calling_libc_system_does_not_run_a_shell(repo_session: Session) -> None:
    result = repo_session.exec("import ctypes\nctypes.CDLL(None).system(b'true')")
    assert result.value is not None and result.value != "0"
    assert_state_kept(repo_session)


def test_subclasses_walk_to_os_system_reaches_it_but_cannot_run_a_shell(
    repo_session: Session,
) -> None:
    code = (
        "wrap = [c for c in ().__class__.__base__.__subclasses__() "
        "if c.__name__ == '_wrap_close'][0]\n"
        "wrap.__init__.__globals__['system']('true')"
    )
    result = repo_session.exec(code)
    assert result.error is None and result.value != "0"
    assert_state_kept(repo_session)


def test_import_through_builtins_tricks_cannot_spawn_processes(repo_session: Session) -> None:
    code = (
        "b = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)\n"
        "sp = b['__import__']('subprocess')\n"
        "sp.check_output(['id'])"
    )
    run_error(repo_session, code)
    result = repo_session.exec("__import__('os').popen('id').read()")
    assert "uid=" not in (result.value or "")
    assert_state_kept(repo_session)


def test_killing_the_parent_or_the_host_fails(repo_session: Session) -> None:
    code = (
        "import os, signal\n"
        "outcomes = []\n"
        f"for pid in (os.getppid(), 1, {os.getpid()}, -1, 0):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "        outcomes.append('sent')\n"
        "    except OSError as e:\n"
        "        outcomes.append(type(e).__name__)\n"
        "outcomes"
    )
    result = repo_session.exec(code)
    assert result.value is not None and "sent" not in result.value
    assert_state_kept(repo_session)


def test_raising_resource_limits_fails(repo_session: Session) -> None:
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, "
        "(resource.RLIM_INFINITY, resource.RLIM_INFINITY))"
    )
    run_error(repo_session, code)
    result = repo_session.exec("import resource\nresource.getrlimit(resource.RLIMIT_AS)[0] > 0")
    assert result.value == "True"
    run_error(
        repo_session, "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (9999, 9999))"
    )
    assert_state_kept(repo_session)


def test_io_uring_syscall_via_ctypes_is_denied(repo_session: Session) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "buf = ctypes.create_string_buffer(256)\n"
        "rc = libc.syscall(425, 8, buf)\n"
        "rc, ctypes.get_errno()"
    )
    assert repo_session.exec(code).value == "(-1, 1)"
    x32_getpid = "libc.syscall(0x40000000 | 39), ctypes.get_errno()"
    if platform.machine() == "x86_64":
        assert repo_session.exec(x32_getpid).value == "(-1, 1)"
    assert_state_kept(repo_session)


def test_memfd_and_ptrace_are_denied(repo_session: Session) -> None:
    run_error(repo_session, "import os\nos.memfd_create('x')")
    code = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.ptrace(0, 0, 0, 0), ctypes.get_errno()"
    assert repo_session.exec(code).value == "(-1, 1)"
    assert_state_kept(repo_session)


# --- resources and time -------------------------------------------------------------


def test_a_memory_bomb_raises_memory_error_and_keeps_state(repo_session: Session) -> None:
    assert "MemoryError" in run_error(repo_session, "x = bytearray(8 << 30)")
    assert "MemoryError" in run_error(repo_session, "x = 'a' * (1 << 31)")
    assert_state_kept(repo_session)


def test_an_infinite_loop_times_out_softly_and_keeps_state(repo_session: Session) -> None:
    result = repo_session.exec("while True:\n    pass")
    assert result.timed_out and not result.restarted
    assert result.error is not None and "TimeoutError" in result.error
    assert_state_kept(repo_session)


def test_ignoring_the_timeout_signal_leads_to_a_hard_kill_and_respawn(
    repo_session: Session,
) -> None:
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    result = repo_session.exec(code)
    assert result.timed_out and result.restarted
    assert repo_session.get("marker") is None
    assert_usable(repo_session)


def test_catching_the_timeout_in_a_loop_leads_to_a_hard_kill_and_respawn(
    repo_session: Session,
) -> None:
    code = "while True:\n    try:\n        while True:\n            pass\n    except TimeoutError:\n        pass"
    result = repo_session.exec(code)
    assert result.timed_out and result.restarted
    assert_usable(repo_session)


def test_a_giant_integer_power_is_stopped(repo_session: Session) -> None:
    result = repo_session.exec("10**10**10")
    assert result.error is not None
    assert result.duration < 3.0
    assert_usable(repo_session)


def test_a_catastrophic_regex_is_stopped(repo_session: Session) -> None:
    result = repo_session.exec("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')")
    assert result.error is not None and result.timed_out
    assert result.duration < 3.0
    assert_usable(repo_session)


def test_unbounded_output_is_truncated_and_stopped(make_session: MakeSession) -> None:
    session = make_session(output_limit=1000)
    result = session.exec("while True:\n    print('x' * 100)")
    assert result.timed_out and result.truncated
    assert len(result.stdout) < 1200
    assert "output truncated" in result.stdout
    assert_usable(session)


def test_system_exit_is_reported_and_keeps_state(repo_session: Session) -> None:
    assert "SystemExit" in run_error(repo_session, "raise SystemExit(3)")
    assert "SystemExit" in run_error(repo_session, "import sys\nsys.exit(0)")
    assert_state_kept(repo_session)


def test_os_exit_restarts_the_worker(repo_session: Session) -> None:
    result = repo_session.exec("import os\nos._exit(0)")
    assert result.restarted and result.error is not None
    assert_usable(repo_session)


def test_a_segfault_restarts_the_worker(repo_session: Session) -> None:
    result = repo_session.exec("import ctypes\nctypes.string_at(0)")
    assert result.restarted and result.error is not None
    assert "SIGSEGV" in result.error or "Segmentation" in result.error
    assert_usable(repo_session)


def test_threads_left_running_are_stopped_and_do_not_write_into_later_results(
    repo_session: Session,
) -> None:
    code = (
        "import threading, time\n"
        "def chatter():\n"
        "    while True:\n"
        "        print('LEAK')\n"
        "        time.sleep(0.001)\n"
        "threading.Thread(target=chatter, daemon=True).start()\n"
        "time.sleep(0.05)"
    )
    first = repo_session.exec(code)
    assert "LEAK" in first.stdout
    assert "were stopped" in first.stderr and not first.restarted
    later = repo_session.exec("import time\ntime.sleep(0.05)\n'done'")
    assert "LEAK" not in later.stdout and later.value == "'done'"
    assert_state_kept(repo_session)


# --- protocol -----------------------------------------------------------------------


def test_garbage_written_to_the_protocol_pipe_kills_and_respawns_the_worker(
    repo_session: Session,
) -> None:
    code = "import os, sys\nos.write(int(sys.argv[2]), b'garbage that is not a frame')\nimport time\ntime.sleep(5)"
    result = repo_session.exec(code)
    assert result.restarted
    assert result.error is not None and "protocol" in result.error
    assert_usable(repo_session)


def test_an_oversized_frame_header_kills_the_worker(repo_session: Session) -> None:
    code = "import os, sys, struct\nos.write(int(sys.argv[2]), struct.pack('>I', 2**31))\nimport time\ntime.sleep(5)"
    assert repo_session.exec(code).restarted
    assert_usable(repo_session)


def test_a_forged_call_to_an_unlisted_host_function_is_not_executed(
    make_session: MakeSession,
) -> None:
    called: list[str] = []
    session = make_session({"allowed": lambda: called.append("allowed")})
    code = (
        "import os, sys, json, struct, time\n"
        "msg = json.dumps({'type': 'call', 'id': 999, 'name': 'os.system', "
        "'args': ['id'], 'kwargs': {}}).encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(msg)) + msg)\n"
        "time.sleep(5)"
    )
    result = session.exec(code)
    assert result.restarted and called == []
    assert_usable(session)


def test_reading_the_hosts_requests_from_the_pipe_only_hurts_the_worker(
    repo_session: Session,
) -> None:
    code = "import os, sys\nos.close(int(sys.argv[1]))\nimport time\ntime.sleep(5)"
    result = repo_session.exec(code)
    assert result.restarted or result.error is not None
    follow_up = repo_session.exec("1")
    assert follow_up.value == "1" or follow_up.restarted
    assert_usable(repo_session)


def test_more_host_calls_than_the_budget_raise_in_the_session(make_session: MakeSession) -> None:
    calls: list[int] = []
    session = make_session({"f": lambda: calls.append(1)}, max_host_calls=5)
    error = run_error(session, "for _ in range(10):\n    f()")
    assert "budget" in error and "RuntimeError" in error
    assert len(calls) == 5
    assert_usable(session)


def test_an_oversized_host_call_argument_raises_without_reaching_the_host(
    make_session: MakeSession,
) -> None:
    calls: list[int] = []
    session = make_session({"f": lambda s: calls.append(len(s))}, max_message_bytes=64 * 1024)
    error = run_error(session, "f('x' * 100_000)")
    assert "ValueError" in error and "too large" in error
    assert calls == []
    assert session.exec("f('small')").error is None
    assert calls == [5]


def test_non_json_host_call_arguments_raise_type_error(make_session: MakeSession) -> None:
    session = make_session({"f": lambda x: x})
    assert "TypeError" in run_error(session, "f(object())")
    assert_usable(session)


def test_an_oversized_host_result_becomes_an_error_in_the_session(
    make_session: MakeSession,
) -> None:
    session = make_session({"big": lambda: "x" * 200_000}, max_message_bytes=64 * 1024)
    error = run_error(session, "big()")
    assert "ValueError" in error and "too large" in error
    assert_usable(session)


def test_without_bwrap_metadata_changes_and_proc_reads_are_still_denied(
    make_session: MakeSession, repo: Path
) -> None:
    """As root without namespaces, Landlock does not cover chmod/chown: seccomp must."""
    session = make_session(root=repo, use_bwrap=False)
    before = (repo / "main.py").stat()
    run_error(session, "import os\nos.chmod('main.py', 0o777)")
    run_error(session, "import os\nos.chown('main.py', 1234, 1234)")
    run_error(session, "import os\nos.utime('main.py', (0, 0))")
    run_error(session, "import os\nos.setxattr('main.py', 'user.x', b'1')")
    run_error(session, f"open('/proc/{os.getpid()}/environ', 'rb').read()")
    run_error(session, "import os\nos.setuid(1000)")
    after = (repo / "main.py").stat()
    assert (before.st_mode, before.st_uid, before.st_mtime) == (
        after.st_mode,
        after.st_uid,
        after.st_mtime,
    )
    assert_usable(session)
