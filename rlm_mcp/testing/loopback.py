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
import logging
import threading
from collections import deque
from types import TracebackType
from typing import Any

import anyio

from rlm_mcp.testing._http import POLL_SECONDS, Handler, Server
from rlm_mcp.testing.replies import (
    DEFAULT_MODEL,
    RecordedRequest,
    Reply,
    Responder,
    as_reply,
)

__all__ = [
    "DEFAULT_MODEL",
    "LoopbackLLMServer",
    "RecordedRequest",
    "Reply",
    "Responder",
]

logger = logging.getLogger(__name__)


class LoopbackLLMServer:
    """An OpenAI-compatible server on ``127.0.0.1`` in a background thread.

    Scripting: queued replies (:meth:`enqueue`) are used first, in order; when
    the queue is empty :attr:`responder` is called with the request body; if
    there is none the server answers 500 ``loopback server: script
    exhausted`` so a missing script fails loudly rather than hanging.

    Args:
        responder: optional callable ``(request_json) -> str | Reply``, asked
            when the queue is empty.
        latency: seconds added before every chat completion reply.
        model: the model reported when the request names none.

    Attributes:
        responder: as above; tests may set it while the server runs.
        latency: as above.
        model: as above.
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
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> LoopbackLLMServer:
        """Bind a free port on ``127.0.0.1`` and start serving.

        Returns:
            ``self``, so ``server = LoopbackLLMServer().start()`` works.

        Raises:
            RuntimeError: the server is already running.
        """
        if self._httpd is not None:
            raise RuntimeError("loopback server already started")
        self._stopping.clear()
        httpd = Server(("127.0.0.1", 0), Handler)
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
            await anyio.sleep(POLL_SECONDS)
        stopper.join()

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._httpd is None:
            raise RuntimeError("loopback server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``.

        Raises:
            RuntimeError: the server is not running.
        """
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------

    def enqueue(self, *replies: str | Reply) -> None:
        """Queue replies; a string is a 200 with that assistant text."""
        with self._lock:
            self._queue.extend(as_reply(r) for r in replies)

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
        """Chat completion requests being answered right now."""
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
            return as_reply(responder(body))
        except Exception as exc:  # reported to the client, not raised in a thread
            message = f"loopback server: responder raised {type(exc).__name__}: {exc}"
            logger.warning("%s", message)
            with self._lock:
                self._errors.append(message)
            return Reply(text=message, status=500)

    def _completion_id(self) -> int:
        with self._lock:
            return next(self._ids)
