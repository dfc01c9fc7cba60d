"""A scriptable OpenAI-compatible HTTP server on the loopback interface.

Tests start one, script what it answers, and point the real ``openai`` client
at :attr:`LoopbackLLMServer.base_url`, so the whole HTTP path (headers,
status codes, retries, timeouts, cancellation) is exercised without a
network or a model.  It ships in the package so users' own tests can use it.

Usage::

    with LoopbackLLMServer() as server:
        server.enqueue("hello")
        server.enqueue(Reply(status=429, headers={"Retry-After": "0.2"}))
        ...

    async with LoopbackLLMServer() as server:
        server.responder = lambda body: "FINAL(42)"

Each connection carries one request (HTTP/1.0 semantics), which keeps
shutdown simple: no idle keep-alive connection can hold a handler thread.
"""

from __future__ import annotations

import itertools
import json
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import anyio

from rlm_mcp.backends.base import estimate_tokens

__all__ = [
    "DEFAULT_MODEL",
    "LoopbackLLMServer",
    "RecordedRequest",
    "Reply",
    "Responder",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "loopback-model"
_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    Attributes:
        text: the assistant text for a 200; the error message otherwise.
        status: HTTP status.  Non-200 statuses get an OpenAI-style error body
            ``{"error": {"message": text, ...}}`` unless ``body`` is given.
        headers: extra response headers (``Retry-After`` and the like).
        delay: seconds to wait before answering; the wait ends early if the
            client disconnects, which the server records.
        usage: ``None`` computes usage from the text, a dict is sent as is,
            ``"omit"`` leaves the ``usage`` key out.
        body: a raw body sent instead of the generated JSON (e.g. garbage).
        hang: never answer; wait until the client disconnects or the server
            stops.
        finish_reason: the choice's ``finish_reason``.
        content_null: send ``"content": null`` instead of ``text``.
        cut_after: send the status line, the headers (with the full
            ``Content-Length``) and only this many bytes of the body, then
            close: a connection lost mid-response.
        drop: close the connection without answering at all.
    """

    text: str = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: Mapping[str, Any] | Literal["omit"] | None = None
    body: str | bytes | None = None
    hang: bool = False
    finish_reason: str = "stop"
    content_null: bool = False
    cut_after: int | None = None
    drop: bool = False

    @classmethod
    def error(cls, status: int, message: str = "", **headers: str) -> Reply:
        """An error reply; keyword arguments become headers (``_`` → ``-``)."""
        return cls(
            text=message or f"loopback error {status}",
            status=status,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )


Responder = Callable[[dict[str, Any]], "str | Reply"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received.

    Attributes:
        json: the parsed body; ``None`` when it was empty or not JSON.
        headers: request headers, names lower-cased.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    received_at: float


class LoopbackLLMServer:
    """An OpenAI-compatible server on ``127.0.0.1`` in a background thread.

    Scripting: queued replies (:meth:`enqueue`) are used first, in order; when
    the queue is empty :attr:`responder` is called with the request body; if
    there is none the server answers 500 ``loopback server: script
    exhausted`` so a missing script fails loudly rather than hanging.

    Attributes:
        responder: optional callable ``(request_json) -> str | Reply``.
        latency: seconds added before every chat completion reply.
        model: the model reported when the request names none.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        latency: float = 0.0,
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.model = model
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._ended = 0
        self._max_concurrent = 0
        self._disconnects = 0
        self._errors: list[str] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> LoopbackLLMServer:
        """Bind a free port and start serving; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("loopback server already started")
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"loopback-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("loopback LLM server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and join every thread the server started.

        Pending waits (``delay``, ``hang``) end at once; idempotent.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LoopbackLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LoopbackLLMServer:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Stopping joins handler threads; do it off the event loop so a
        # handler still talking to a client on this loop cannot deadlock.
        stopper = threading.Thread(target=self.stop, name="loopback-llm-stop")
        stopper.start()
        while stopper.is_alive():
            await anyio.sleep(_POLL_SECONDS)
        stopper.join()

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("loopback server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------

    def enqueue(self, *replies: str | Reply) -> None:
        """Queue replies; a string is a 200 with that assistant text."""
        with self._lock:
            self._queue.extend(_as_reply(r) for r in replies)

    @property
    def pending(self) -> int:
        """Queued replies not yet used."""
        with self._lock:
            return len(self._queue)

    # -- observations --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat completion requests received so far (a copy)."""
        with self._lock:
            return [r for r in self._requests if r.path.endswith("/chat/completions")]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        """Every request received, whatever the path (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def ended(self) -> int:
        """Chat completion requests that are over: answered, dropped or abandoned by the client."""
        with self._lock:
            return self._ended

    @property
    def max_concurrent(self) -> int:
        """The most chat completion requests observed in flight at once."""
        with self._lock:
            return self._max_concurrent

    @property
    def client_disconnects(self) -> int:
        """Requests whose client went away before the reply was sent."""
        with self._lock:
            return self._disconnects

    @property
    def errors(self) -> list[str]:
        """Responder failures, reported to the client as 500s (a copy)."""
        with self._lock:
            return list(self._errors)

    # -- called from handler threads ----------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)

    def _leave(self, *, disconnected: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._ended += 1
            if disconnected:
                self._disconnects += 1

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder = self.responder
        if responder is None:
            return Reply(text="loopback server: script exhausted", status=500)
        try:
            return _as_reply(responder(body))
        except Exception as exc:  # reported to the client, not raised in a thread
            message = f"loopback server: responder raised {type(exc).__name__}: {exc}"
            logger.warning("%s", message)
            with self._lock:
                self._errors.append(message)
            return Reply(text=message, status=500)

    def _completion_id(self) -> int:
        with self._lock:
            return next(self._ids)


def _as_reply(reply: str | Reply) -> Reply:
    if isinstance(reply, Reply):
        return reply
    if isinstance(reply, str):
        return Reply(text=reply)
    raise TypeError(f"a scripted reply must be str or Reply, not {type(reply).__name__}")


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads are tracked and joined by server_close().
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 256
    owner: LoopbackLLMServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
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
            remaining = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._client_gone(min(remaining, _POLL_SECONDS)):
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
