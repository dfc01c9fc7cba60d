"""How a worker process is started: its command line, its environment and the forking thread.

The worker runs as ``python -I -B _worker.py`` with a minimal environment, optionally inside
bubblewrap with fresh namespaces and only the paths it needs mounted read-only (the
interpreter, the system libraries, this package's directory and the session's readable paths).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sandbox._types import SessionConfig
from sandbox.errors import SandboxUnavailableError
from sandbox.isolation import bwrap_path

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


class Spawner:
    """Owns the thread that forks workers.

    ``--die-with-parent`` (PR_SET_PDEATHSIG) fires when the *thread* that forked the child
    exits, so forking from whatever thread happens to call ``exec`` could kill the worker
    later; this thread lives exactly as long as the session.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._loop, name="sandbox-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, fut = item
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def run(self, fn: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut.result()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


def memory_limit(config: SessionConfig) -> int:
    """Unless configured: 1 GiB plus three times the lazy text, mapped and decoded in the worker."""
    if config.memory_bytes is not None:
        return config.memory_bytes
    lazy = sum(os.path.getsize(p) for p in config.lazy_text.values())
    return (1 << 30) + 3 * lazy


def worker_env() -> dict[str, str]:
    """A minimal environment: nothing from the host (API keys!) reaches the worker."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "MALLOC_ARENA_MAX": "2",
        "HOME": "/nonexistent",
    }


def bwrap_command(readable: list[str], cwd: str) -> list[str]:
    """The bubblewrap prefix that runs the worker unprivileged in fresh namespaces."""
    exe = bwrap_path()
    if exe is None:
        raise SandboxUnavailableError("bubblewrap not found")
    cmd = [
        exe,
        "--unshare-all", "--unshare-user",
        "--uid", "65534", "--gid", "65534",
        "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "--hostname", "sandbox",
        "--dev", "/dev",
    ]  # fmt: skip
    binds = ["/usr", "/etc/ld.so.cache"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds.append(top)
    binds += [
        os.path.realpath(p)
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    ]
    binds += [
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(WORKER_SCRIPT),
        *readable,
    ]
    chosen: list[str] = []
    for path in sorted({os.path.normpath(p) for p in binds if os.path.exists(p)}):
        if not any(path == c or path.startswith(c.rstrip("/") + "/") for c in chosen):
            chosen.append(path)
    for path in chosen:
        cmd += ["--ro-bind", path, path]
    cmd += ["--chdir", cwd, "--"]
    return cmd


def start_worker(
    spawner: Spawner, wrapper: list[str], cwd: str
) -> tuple[subprocess.Popen[bytes], int, int, int]:
    """Fork the worker behind ``wrapper``; returns it with the host's pipe ends.

    The ends are the worker's input (write), its protocol output (read) and its stderr (read);
    the worker gets the other two protocol ends as inherited fds named on its command line.
    """
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    err_r, err_w = os.pipe()
    cmd = [*wrapper, sys.executable, "-I", "-B", WORKER_SCRIPT, str(to_r), str(from_w)]

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err_w,
            pass_fds=(to_r, from_w),
            env=worker_env(),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )

    try:
        proc = spawner.run(popen)
    except BaseException:
        for fd in (to_r, to_w, from_r, from_w, err_r, err_w):
            os.close(fd)
        raise
    finally:
        for fd in (to_r, from_w, err_w):
            try:
                os.close(fd)
            except OSError:
                pass
    return proc, to_w, from_r, err_r
