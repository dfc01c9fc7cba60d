"""A real ``rlm-mcp serve --transport http`` subprocess for the ``/v1`` tests.

The root model is a loopback server (``RLM_BASE_URL``); each test scripts it
through the ``script`` fixture, which resets it afterwards. Self-contained: no
helpers are imported from other test folders.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from rlm_mcp.testing import LoopbackLLMServer, Responder
from tests.mcp.serve_helpers import accepts, stop_process
from tests.polling import poll, wait_until

TOKEN = "openai-route-token"
ROOT_MODEL = "root-model"
MODEL = f"rlm:{ROOT_MODEL}"
MAX_BODY_MB = 4
MAX_CONCURRENT = 2
HEARTBEAT_SECONDS = 0.5
SERVE = [sys.executable, "-m", "rlm_mcp", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        return accepts(port)

    wait_until(listening, deadline_s, f"something to listen on port {port}", interval=0.05)


def server_env(tmp: Path, llm: LoopbackLLMServer) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "OPENAI_", "XDG_"))}
    return {
        **base,
        "RLM_BASE_URL": llm.base_url,
        "RLM_MODEL": ROOT_MODEL,
        "RLM_API_KEY": "unused",
        "RLM_ALLOWED_ROOTS": str(tmp),
        "RLM_CACHE_DIR": str(tmp / "cache"),
        "RLM_TRAJECTORY_DIR": str(tmp / "trajectories"),
        "RLM_NO_WATCH": "1",
        "RLM_LOG_LEVEL": "INFO",
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Served:
    port: int
    llm: LoopbackLLMServer
    tmp: Path
    stderr: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, **kwargs: object) -> openai.OpenAI:
        options: dict[str, object] = {"api_key": TOKEN, "max_retries": 0, "timeout": 60.0}
        options.update(kwargs)
        return openai.OpenAI(base_url=self.base_url, **options)  # type: ignore[arg-type]

    def aclient(self, **kwargs: object) -> openai.AsyncOpenAI:
        options: dict[str, object] = {"api_key": TOKEN, "max_retries": 0, "timeout": 60.0}
        options.update(kwargs)
        return openai.AsyncOpenAI(base_url=self.base_url, **options)  # type: ignore[arg-type]


def start(tmp: Path, llm: LoopbackLLMServer, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    err = (tmp / "server-stderr.log").open("w")
    proc = subprocess.Popen(
        [*SERVE, "--port", str(port), "--auth-token", TOKEN, *extra],
        env=server_env(tmp, llm),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    err.close()
    wait_for_port(port, proc)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, timeout=20)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("v1")
    with LoopbackLLMServer() as llm:
        proc, port = start(
            tmp,
            llm,
            "--transport",
            "http",
            "--openai-max-body-mb",
            str(MAX_BODY_MB),
            "--openai-max-concurrent",
            str(MAX_CONCURRENT),
            "--openai-heartbeat-seconds",
            str(HEARTBEAT_SECONDS),
        )
        try:
            yield Served(port, llm, tmp, tmp / "server-stderr.log")
        finally:
            stop(proc)


@pytest.fixture
def script(served: Served) -> Iterator[Callable[[Responder], LoopbackLLMServer]]:
    """Set the loopback model's responder for one test; it is cleared afterwards."""

    def use(responder: Responder) -> LoopbackLLMServer:
        served.llm.responder = responder
        return served.llm

    yield use
    served.llm.responder = None
    poll(lambda: not served.llm.in_flight, 10, interval=0.02)
