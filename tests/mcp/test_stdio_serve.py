"""The SDK client against a real ``rlm-mcp serve`` subprocess over stdio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from rlm_mcp.testing import LoopbackLLMServer
from tests.mcp.serve_helpers import SERVE, full_env, server_env, write_sample

TOOLS = [
    "rlm_load",
    "rlm_query",
    "rlm_find",
    "rlm_search",
    "rlm_symbols",
    "rlm_references",
    "rlm_callers",
    "rlm_outline",
    "rlm_read",
    "rlm_repo_map",
    "rlm_exec",
    "rlm_repos",
    "rlm_unload",
]


def _final(body: object) -> str:
    return 'Done.\n```python\nFINAL("Circle.area is in pkg/geometry.py:5")\n```\n'


async def test_stdio_server_lists_loads_searches_and_answers(tmp_path: Path) -> None:
    repo = write_sample(tmp_path / "shapes")
    errlog = tmp_path / "server-stderr.log"
    async with LoopbackLLMServer(responder=_final) as llm:
        params = StdioServerParameters(
            command=SERVE[0],
            args=SERVE[1:],
            env=server_env(tmp_path, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model"),
        )
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                tools = await client.list_tools()
                assert [t.name for t in tools.tools] == TOOLS

                loaded = await client.call_tool("rlm_load", {"path": str(repo)})
                assert not loaded.is_error, loaded.content
                assert loaded.structured_content["name"] == "shapes"
                assert loaded.structured_content["files"] == 2

                found = await client.call_tool("rlm_search", {"pattern": r"def area"})
                assert not found.is_error, found.content
                assert found.structured_content["hits"] == ["pkg/geometry.py:5:    def area(self):"]

                missing = await client.call_tool(
                    "rlm_search", {"pattern": "x", "repo": "no-such-repo"}
                )
                assert missing.is_error
                assert "no-such-repo" in str(missing.content)

                outside = await client.call_tool("rlm_load", {"path": "/"})
                assert outside.is_error
                assert "outside the allowed roots" in str(outside.content)

                answer = await client.call_tool(
                    "rlm_query", {"question": "Where is the area computed?"}
                )
                assert not answer.is_error, answer.content
                assert answer.structured_content["status"] == "completed"
                assert answer.structured_content["answer"] == "Circle.area is in pkg/geometry.py:5"
        assert llm.requests[0].json["model"] == "root-model"
    logs = errlog.read_text()
    assert "serving MCP over stdio" in logs, "logs go to stderr"


def test_stdout_carries_only_json_rpc_while_logs_go_to_stderr(tmp_path: Path) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    notify = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    env = full_env(server_env(tmp_path, RLM_LOG_LEVEL="DEBUG"))
    with subprocess.Popen(
        SERVE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        for message in (init, notify, listing):
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        messages: list[dict[str, Any]] = []
        while not any(m.get("id") == 2 for m in messages):
            line = proc.stdout.readline()
            assert line, "the server closed stdout before answering tools/list"
            if line.strip():
                messages.append(json.loads(line))
        proc.stdin.close()
        rest, stderr = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=60)
    messages += [json.loads(ln) for ln in rest.splitlines() if ln.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert {m.get("id") for m in messages} >= {1, 2}
    assert "serving MCP over stdio" in stderr
