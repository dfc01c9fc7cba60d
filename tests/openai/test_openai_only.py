"""``serve --openai-only``: the two ``/v1`` routes alone, announced once listening."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
from pathlib import Path
from typing import Any

from rlm_mcp.testing import LoopbackLLMServer
from tests.polling import poll

from .conftest import MODEL, SERVE, TOKEN, Served, server_env


def get(port: int, path: str, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.startswith(b"{") else {}
    finally:
        conn.close()


def test_openai_only_serves_v1_and_no_mcp(tmp_path: Path) -> None:
    with LoopbackLLMServer() as llm:
        proc = subprocess.Popen(
            [*SERVE, "--openai-only", "--port", "0", "--auth-token", TOKEN],
            env=server_env(tmp_path, llm),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            # Read the descriptor itself: a line kept in the text wrapper's buffer is one that
            # select() never reports (the announcement may come in one read with uvicorn's).
            fd, written = proc.stderr.fileno(), ""

            def announcement() -> str:
                nonlocal written
                if select.select([fd], [], [], 0.5)[0]:
                    written += os.read(fd, 65536).decode(errors="replace")
                lines = written.splitlines(keepends=True)
                return next((x for x in lines if x.startswith("rlm-mcp:") and x.endswith("\n")), "")

            line = poll(announcement, 60, interval=0)
            match = re.fullmatch(
                r"rlm-mcp: serving the OpenAI-compatible API at http://127\.0\.0\.1:(\d+)/v1\n",
                line,
            )
            assert match, line
            port = int(match.group(1))
            status, body = get(port, "/v1/models")
            assert status == 200 and [m["id"] for m in body["data"]] == [MODEL]
            status, body = get(port, "/mcp")
            assert status == 404 and body["error"]["code"] == "unknown_route"
            assert get(port, "/v1/models", token="nope")[0] == 401
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stderr is not None:
                    proc.stderr.close()
        assert proc.returncode in (0, 130)


def test_openai_only_with_stdio_is_a_usage_error(tmp_path: Path) -> None:
    with LoopbackLLMServer() as llm:
        done = subprocess.run(
            [*SERVE, "--openai-only", "--transport", "stdio"],
            env=server_env(tmp_path, llm),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "--openai-only serves HTTP" in done.stderr


def test_mcp_still_answers_beside_v1(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        conn.request("GET", "/mcp", headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        response.read()
        assert response.status != 404
    finally:
        conn.close()
