"""/trajectories/ on the HTTP transport: index, one page, refused names, token, Host/Origin."""

from __future__ import annotations

import asyncio
import http.client
import os
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from rlm_mcp.http import build_http_app
from rlm_mcp.viewer.web import TrajectoryApp, safe_name
from tests.mcp.serve_helpers import (
    SERVE,
    free_port,
    full_env,
    server_env,
    stop_process,
    wait_for_port,
)
from tests.viewer.events import EVIL, sample_events, write_jsonl

TOKEN = "viewer-token"
HOSTS = ["127.0.0.1:*", "localhost:*"]
ORIGINS = ["http://127.0.0.1:*"]


def _call(app: Any, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    """One request through an ASGI app: (status, headers, body)."""
    sent: list[dict[str, Any]] = []
    given = {"host": "127.0.0.1:8765", **(headers or {})}
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in given.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def trajectories(tmp_path: Path) -> Path:
    directory = tmp_path / "trajectories"
    directory.mkdir()
    old = write_jsonl(directory / "20260101T000000-aaaa.jsonl", sample_events())
    new = write_jsonl(directory / "20260102T000000-bbbb.jsonl", sample_events(evil=EVIL))
    os.utime(old, (1_000, 1_000))
    os.utime(new, (2_000, 2_000))
    (directory / "notes.txt").write_text("not a trajectory")
    (tmp_path / "secret.jsonl").write_text('{"event": "start", "question": "SECRET"}\n')
    return directory


def _app(directory: Path) -> TrajectoryApp:
    return TrajectoryApp(lambda: directory, allowed_hosts=HOSTS, allowed_origins=ORIGINS)


def test_the_index_lists_trajectory_files_newest_first(trajectories: Path) -> None:
    status, headers, body = _call(_app(trajectories), "/trajectories/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body.index("bbbb.jsonl") < body.index("aaaa.jsonl")
    assert "notes.txt" not in body and "secret" not in body
    assert "default-src 'none'" in headers["content-security-policy"]
    assert _call(_app(trajectories), "/trajectories")[0] == 308


def test_one_trajectory_renders_escaped(trajectories: Path) -> None:
    status, _, body = _call(_app(trajectories), "/trajectories/20260102T000000-bbbb.jsonl")
    assert status == 200
    assert "rlm_query · depth 1" in body and "guardrail: max_iterations" in body
    assert "<script>alert" not in body and body.count("<script>") == 1


@pytest.mark.parametrize(
    "name",
    [
        "../secret.jsonl",
        "..%2Fsecret.jsonl",
        "sub/x.jsonl",
        "..",
        "notes.txt",
        "nope.jsonl",
        "..\\secret.jsonl",
        ".hidden.jsonl",
    ],
)
def test_names_with_a_slash_or_dots_or_unknown_are_404(trajectories: Path, name: str) -> None:
    status, _, body = _call(_app(trajectories), "/trajectories/" + name)
    assert status == 404
    assert "SECRET" not in body


def test_safe_name() -> None:
    assert safe_name("20260102T000000-bbbb.jsonl")
    assert not any(safe_name(n) for n in ("", "a/b", "..", "a..b", "a\\b", ".x", "a\x00"))


def test_host_and_origin_are_checked_and_only_get(trajectories: Path) -> None:
    app = _app(trajectories)
    assert _call(app, "/trajectories/", {"host": "evil.example:80"})[0] == 421
    assert _call(app, "/trajectories/", {"origin": "http://evil.example"})[0] == 403
    assert _call(app, "/trajectories/", {"origin": "http://127.0.0.1:9"})[0] == 200
    assert _call(app, "/trajectories/", method="POST")[0] == 405


def test_the_http_app_routes_trajectories_behind_the_token(trajectories: Path) -> None:
    app = build_http_app(
        None,
        auth_token=TOKEN,
        service=cast(Any, lambda: None),  # never called: /v1 gets no request here
        trajectory_dir=trajectories,
    )
    assert _call(app, "/trajectories/")[0] == 401
    assert _call(app, "/trajectories/", {"authorization": "Bearer wrong"})[0] == 401
    status, _, body = _call(app, "/trajectories/", {"authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "bbbb.jsonl" in body
    assert (
        _call(app, "/trajectories/x", {"authorization": f"Bearer {TOKEN}", "host": "evil:1"})[0]
        == 421
    )


def test_serve_http_serves_its_own_trajectory_dir(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    directory = Path(env["RLM_TRAJECTORY_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    write_jsonl(directory / "20260103T000000-cccc.jsonl", sample_events(ended=False))
    port = free_port()
    proc = subprocess.Popen(
        [*SERVE, "--transport", "http", "--port", str(port), "--auth-token", TOKEN],
        env=full_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, alive=lambda: proc.poll() is None)

        def get(path: str, token: str | None = TOKEN) -> tuple[int, str]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            out = resp.status, resp.read().decode()
            conn.close()
            return out

        assert get("/trajectories/", token=None)[0] == 401
        status, index = get("/trajectories/")
        assert status == 200 and "cccc.jsonl" in index
        status, page = get("/trajectories/20260103T000000-cccc.jsonl")
        assert status == 200 and '<meta http-equiv="refresh" content="2">' in page
        assert get("/trajectories/..")[0] == 404
    finally:
        stop_process(proc)
