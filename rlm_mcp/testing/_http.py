"""The loopback server's HTTP side: one handler thread per request (HTTP/1.0).

The handler reads and writes the wire; what to answer, and the counters tests observe, belong
to the server object it serves (:class:`ReplySource`, which
:class:`~rlm_mcp.testing.loopback.LoopbackLLMServer` implements).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from rlm_mcp.backends.base import estimate_tokens
from rlm_mcp.testing.replies import RecordedRequest, Reply

logger = logging.getLogger("rlm_mcp.testing.loopback")

POLL_SECONDS = 0.01


class ReplySource(Protocol):
    """What a handler needs from the server it serves."""

    model: str
    latency: float
    _stopping: threading.Event

    def _record(self, request: RecordedRequest) -> None: ...
    def _enter(self) -> None: ...
    def _leave(self, *, disconnected: bool) -> None: ...
    def _next_reply(self, body: dict[str, Any]) -> Reply: ...
    def _completion_id(self) -> int: ...


class Server(ThreadingHTTPServer):
    # Non-daemon handler threads are tracked and joined by server_close().
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 256
    owner: ReplySource


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.0"
    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("loopback: " + format, *args)

    # -- routing -------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            owner = self.server.owner
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": owner.model, "object": "model", "created": 0, "owned_by": "loopback"}
                    ],
                },
            )
        else:
            self._send_error_json(404, f"loopback server: no route for GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_error_json(404, f"loopback server: no route for POST {self.path}")
            return
        if not isinstance(body, dict):
            self._send_error_json(400, "loopback server: request body is not a JSON object")
            return
        owner = self.server.owner
        owner._enter()
        disconnected = False
        try:
            disconnected = not self._chat_completion(body)
        finally:
            owner._leave(disconnected=disconnected)

    # -- chat completions ----------------------------------------------------

    def _chat_completion(self, body: dict[str, Any]) -> bool:
        """Answer one request; False when the client went away first."""
        owner = self.server.owner
        if owner.latency > 0 and not self._wait(owner.latency):
            return False
        reply = owner._next_reply(body)
        if reply.hang:
            self._wait(None)
            return False
        if reply.delay > 0 and not self._wait(reply.delay):
            return False
        if reply.drop:
            return True
        try:
            if reply.cut_after is not None:
                raw = json.dumps(self._completion_json(body, reply)).encode()
                self._send_raw(
                    reply.status, raw, "application/json", reply.headers, reply.cut_after
                )
            elif reply.body is not None:
                raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self._send_raw(reply.status, raw, "application/json", reply.headers)
            elif reply.status != 200:
                self._send_error_json(reply.status, reply.text, reply.headers)
            else:
                self._send_json(200, self._completion_json(body, reply), reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _completion_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        owner = self.server.owner
        model = body.get("model") or owner.model
        data: dict[str, Any] = {
            "id": f"chatcmpl-loopback-{owner._completion_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None if reply.content_null else reply.text,
                    },
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if reply.usage is None:
            prompt = sum(
                estimate_tokens(str(m.get("content") or ""))
                for m in body.get("messages") or []
                if isinstance(m, dict)
            )
            completion = estimate_tokens(reply.text)
            data["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        elif reply.usage != "omit":
            data["usage"] = dict(reply.usage)
        return data

    # -- helpers -------------------------------------------------------------

    def _record(self, body: Any) -> None:
        self.server.owner._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                json=body,
                received_at=time.monotonic(),
            )
        )

    def _wait(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (forever if None); False if the client left or the server stops."""
        deadline = None if seconds is None else time.monotonic() + seconds
        stopping = self.server.owner._stopping
        while True:
            if stopping.is_set():
                return False
            remaining = POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._client_gone(min(remaining, POLL_SECONDS)):
                return False

    def _client_gone(self, wait: float) -> bool:
        conn: socket.socket = self.connection
        try:
            readable, _, _ = select.select([conn], [], [], wait)
            if not readable:
                return False
            return conn.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _send_error_json(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        error_type = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            error_type = "rate_limit_exceeded"
        self._send_json(
            status,
            {"error": {"message": message, "type": error_type, "param": None, "code": None}},
            headers,
        )

    def _send_json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(data).encode(), "application/json", headers)

    def _send_raw(
        self,
        status: int,
        raw: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        cut_after: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw if cut_after is None else raw[: max(0, cut_after)])
        self.wfile.flush()
