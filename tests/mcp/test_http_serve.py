"""A real ``rlm-mcp serve --transport http`` subprocess: the SDK client, then raw HTTP probes."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from rlm_mcp.testing import LoopbackLLMServer
from tests.mcp.serve_helpers import (
    SERVE,
    free_port,
    full_env,
    server_env,
    serving_http,
    write_sample,
)

TOKEN = "s3cret-token-for-tests"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


@dataclass
class Running:
    port: int
    repo: Path
    llm: LoopbackLLMServer
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("http")
    repo = write_sample(tmp / "shapes")
    with LoopbackLLMServer() as llm:
        llm.responder = lambda body: '```python\nFINAL("pkg/geometry.py:5")\n```'
        env = server_env(tmp, RLM_BASE_URL=llm.base_url, RLM_MODEL="root-model")
        with serving_http(tmp, env, TOKEN) as port:
            yield Running(port, repo, llm, tmp / "server-stderr.log")


def _post(
    served: Running,
    body: bytes | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **(headers or {}),
    }
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    try:
        conn.request(
            method, "/mcp", body=json.dumps(INIT).encode() if body is None else body, headers=h
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


async def test_sdk_client_over_http_loads_searches_and_queries(served: Running) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        assert "rlm_query" in [t.name for t in tools.tools]
        loaded = await client.call_tool("rlm_load", {"path": str(served.repo)})
        assert not loaded.is_error, loaded.content
        found = await client.call_tool("rlm_search", {"pattern": "def area"})
        assert found.structured_content["hits"] == ["pkg/geometry.py:5:    def area(self):"]
        answer = await client.call_tool("rlm_query", {"question": "Where is area?"})
        assert not answer.is_error, answer.content
        assert answer.structured_content["answer"] == "pkg/geometry.py:5"


def test_a_request_with_the_token_is_served(served: Running) -> None:
    status, headers, body = _post(served)
    assert status == 200, body
    assert headers["content-type"].startswith(("application/json", "text/event-stream"))


def test_missing_or_wrong_bearer_token_gets_401_with_www_authenticate(served: Running) -> None:
    for token in (None, "wrong-token"):
        status, headers, _ = _post(served, token=token)
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer")


def test_foreign_origin_gets_403(served: Running) -> None:
    status, _, _ = _post(served, headers={"Origin": "https://evil.example"})
    assert status == 403
    ok, _, _ = _post(served, headers={"Origin": f"http://127.0.0.1:{served.port}"})
    assert ok == 200


def test_foreign_host_header_gets_421(served: Running) -> None:
    status, _, _ = _post(served, headers={"Host": "rebound.example:80"})
    assert status == 421


def test_oversized_body_gets_413(served: Running) -> None:
    big = b'{"pad": "' + b"x" * (4 * 1024 * 1024 + 10) + b'"}'
    status, _, _ = _post(served, big)
    assert status == 413


def test_wrong_content_type_and_wrong_method_get_4xx(served: Running) -> None:
    status, _, _ = _post(served, headers={"Content-Type": "text/plain"})
    assert 400 <= status < 500
    status, _, _ = _post(served, b"", method="PUT")
    assert status == 405
    status, _, _ = _post(served, b"not json")
    assert status == 400


def test_http_logs_go_to_stderr(served: Running) -> None:
    assert "serving MCP over Streamable HTTP" in served.stderr.read_text()


def test_serving_http_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SERVE, "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=full_env(server_env(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "without authentication" in proc.stderr
    assert proc.stdout == ""


async def test_two_http_clients_get_private_repls_and_the_first_continues_with_its_handle(
    served: Running,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http_a,
        Client(streamable_http_client(served.url, http_client=http_a)) as first,
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http_b,
        Client(streamable_http_client(served.url, http_client=http_b)) as second,
    ):
        loaded = await first.call_tool("rlm_load", {"path": str(served.repo)})
        assert not loaded.is_error, loaded.content
        mine = await first.call_tool("rlm_exec", {"code": "secret = open.__name__ + '-41'"})
        assert not mine.is_error, mine.content
        handle = mine.structured_content["session"]
        peek = await second.call_tool("rlm_exec", {"code": "'secret' in globals()"})
        assert not peek.is_error, peek.content
        assert peek.structured_content["value"] == "False"
        assert peek.structured_content["session"] != handle
        again = await first.call_tool("rlm_exec", {"code": "secret", "session": handle})
        assert not again.is_error, again.content
        assert again.structured_content["value"] == "'open-41'"
