"""A client that disconnects mid-query: the server stops spending, cleans up and exits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from mcp_types.version import LATEST_HANDSHAKE_VERSION

from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.mcp.serve_helpers import SERVE, full_env, server_env, write_sample
from tests.polling import wait_until


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _read_response(proc: subprocess.Popen[str], want_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the server closed stdout"
        message = json.loads(line)
        if message.get("id") == want_id:
            return dict(message)


def test_client_disconnecting_mid_query_stops_the_model_call_and_the_sandbox(
    tmp_path: Path,
) -> None:
    repo = write_sample(tmp_path / "shapes")
    first_turn = 'Looking.\n```python\nhits = repo.grep("area")\n```\n'
    with LoopbackLLMServer() as llm:
        llm.enqueue(first_turn)
        llm.responder = lambda body: Reply(hang=True)
        hung_turn_seen = lambda: len(llm.requests) >= 2  # noqa: E731
        env = full_env(server_env(tmp_path, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model"))
        proc = subprocess.Popen(
            SERVE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            _send(
                proc,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": LATEST_HANDSHAKE_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"},
                    },
                },
            )
            _read_response(proc, 1)
            _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            load = {"name": "rlm_load", "arguments": {"path": str(repo)}}
            _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": load})
            assert not _read_response(proc, 2)["result"].get("isError")
            query = {"name": "rlm_query", "arguments": {"question": "spin"}}
            _send(proc, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": query})

            wait_until(
                lambda: hung_turn_seen() and _descendants(proc.pid),
                20,
                "the query to start (its second model call and a sandbox worker)",
                interval=0.02,
            )
            workers = _descendants(proc.pid)

            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=20)
            wait_until(lambda: not llm.in_flight, 10, "the model call to end with the server")
            wait_until(
                lambda: not any(_alive(p) for p in workers),
                10,
                "the sandbox workers to end with the server",
                interval=0.02,
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
