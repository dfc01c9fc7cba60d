"""Helpers for tests that run ``rlm-mcp serve`` as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.polling import wait_until

SAMPLE = {
    "pkg/geometry.py": (
        "class Circle:\n"
        "    def __init__(self, r):\n"
        "        self.r = r\n"
        "\n"
        "    def area(self):\n"
        "        return 3.14159 * self.r ** 2\n"
    ),
    "pkg/main.py": "from pkg.geometry import Circle\n\nprint(Circle(2).area())\n",
}

SERVE = [sys.executable, "-m", "rlm_mcp", "serve"]


def write_sample(root: Path) -> Path:
    for rel, text in SAMPLE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Variables for the server: confined to ``tmp``, caches and state in ``tmp``, no watching."""
    env = {
        "RLM_ALLOWED_ROOTS": str(tmp),
        "RLM_CACHE_DIR": str(tmp / "cache"),
        "RLM_TRAJECTORY_DIR": str(tmp / "trajectories"),
        "RLM_NO_WATCH": "1",
        "RLM_LOG_LEVEL": "INFO",
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def full_env(extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_"))}
    return {**base, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts a connection on ``port`` (127.0.0.1)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int, deadline_s: float = 30.0, alive: Callable[[], bool] | None = None
) -> None:
    """Wait until something accepts on ``port``; ``alive()`` returning False aborts early."""

    def listening() -> bool:
        if alive is not None and not alive():
            raise RuntimeError("the server process exited before listening")
        return accepts(port)

    wait_until(listening, deadline_s, f"something to listen on port {port}", interval=0.05)


def many_handlers(root: Path, files: int, dirs: int) -> Path:
    """``files`` small modules (``pkgN/modI.py``, one ``handler_I`` each) in ``dirs`` folders:
    a tree whose cold load takes long enough to be seen running."""
    for i in range(files):
        d = root / f"pkg{i % dirs}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(
            f'"""Module {i}."""\n\n\ndef handler_{i}(event):\n    return event + {i}\n'
        )
    return root


@contextmanager
def serving_http(tmp: Path, env: Mapping[str, str], token: str) -> Iterator[int]:
    """``rlm-mcp serve --transport http`` with ``env`` (over the process's own) and ``token``,
    its stderr in ``tmp/server-stderr.log``; yields the port once it listens, and stops it."""
    port = free_port()
    with (tmp / "server-stderr.log").open("w") as err:
        proc = subprocess.Popen(
            [*SERVE, "--transport", "http", "--port", str(port), "--auth-token", token],
            env=full_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for_port(port, alive=lambda: proc.poll() is None)
        yield port
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Terminate ``proc`` and wait for it; kill it when it outlives ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
