"""The ASGI app behind ``/v1``: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Checks, in order, each answered with an OpenAI-shaped error: the bearer token (401),
the ``Host`` and ``Origin`` headers against the same lists as the MCP transport (421,
403), the route (404, 405), the content type and body size (400, 413), the fields
(400), the model (404) and the number of queries running (429). Only then does a
query start, off the request's own task so that a client going away cancels it
(and with it every sub-call).

A streamed response holds its headers back for up to :data:`HOLD_SECONDS`, so a
query that fails at once (an expired session, a bad limit) still gets a proper
HTTP error; after that, an error is sent as one ``data: {"error": ...}`` event
followed by ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

import rlm_mcp.openai.response as wire
from rlm_mcp.engine.progress import ProgressEvent
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.errors import (
    BackendError,
    ConfigError,
    PathNotAllowed,
    RepositoryNotFound,
    RlmMcpError,
    SandboxUnavailable,
    SessionNotFound,
    UnknownRepository,
)
from rlm_mcp.openai.request import ApiError, ChatRequest, parse_chat_request, transcript
from rlm_mcp.service import RlmService

__all__ = ["HOLD_SECONDS", "OpenAIApp", "OpenAIOptions"]

log = logging.getLogger(__name__)

HOLD_SECONDS = 1.0
"""How long a streamed response waits for a fast failure before sending its headers."""
CONTENT_CHUNK = 512
"""Characters of the answer per ``delta.content`` chunk."""
THREAD_PARSE_BYTES = 1 << 20
"""Bodies over this size are decoded in a worker thread, off the event loop."""
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """The caps that keep a caller from exhausting the server.

    Attributes:
        max_body_bytes: largest request body (413 above it).
        max_messages: most messages in one request (400 above it).
        max_concurrent: most chat completions running at once (429 when full).
        heartbeat_seconds: a streamed response sends an SSE comment at least
            this often while the query runs.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_messages: int = 10_000
    max_concurrent: int = 8
    heartbeat_seconds: float = 4.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not self.heartbeat_seconds > 0:
            raise ConfigError("heartbeat_seconds must be positive")


def _matches(value: str, patterns: Sequence[str]) -> bool:
    """``value`` equals a pattern, or a ``base:*`` pattern's base with any port."""
    return any(value == p or (p.endswith(":*") and value.startswith(p[:-1])) for p in patterns)


class _Gone(Exception):
    """The client disconnected."""


def _progress_line(event: ProgressEvent) -> bytes:
    step = (
        f"iteration {event.iteration}/{event.max_iterations}"
        if event.kind == "iteration"
        else "sub_call"
    )
    return (
        f": progress {step} depth={event.depth} calls={event.calls} "
        f"sub_calls={event.sub_calls} tokens={event.tokens} cost_usd={event.cost_usd} "
        f"elapsed={event.elapsed_seconds:.1f}s\n\n"
    ).encode()


def _error_for(exc: Exception) -> ApiError:
    """An exception from loading or querying, as the HTTP error the client gets."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SessionNotFound):
        return ApiError(400, str(exc), code=exc.kind, param="rlm.session")
    if isinstance(exc, PathNotAllowed):
        return ApiError(
            403, str(exc), code="path_not_allowed", param="rlm.repository", type="permission_error"
        )
    if isinstance(exc, RepositoryNotFound):
        return ApiError(400, str(exc), code="repository_not_found", param="rlm.repository")
    if isinstance(exc, ConfigError | UnknownRepository):
        return ApiError(400, str(exc), code="invalid_value")
    if isinstance(exc, BackendError):
        return ApiError(502, f"the model provider failed ({exc.kind}): {exc}", code=exc.kind)
    if isinstance(exc, SandboxUnavailable):
        return ApiError(503, str(exc), code="sandbox_unavailable")
    if isinstance(exc, RlmMcpError):
        return ApiError(500, str(exc), code="query_failed")
    log.error("chat completion failed", exc_info=exc)
    return ApiError(500, "internal error (see the server log)", code="internal_error")


class OpenAIApp:
    """The ``/v1`` routes over an :class:`~rlm_mcp.service.RlmService`.

    Args:
        service: returns the service. With ``owns_service`` the app calls it once
            at startup (ASGI lifespan) and closes the service at shutdown;
            otherwise another app's lifespan owns it (the MCP server's, sharing
            its loaded repositories).
        token: the bearer token every request must carry; ``None`` for none.
        allowed_hosts / allowed_origins: ``Host`` and ``Origin`` values accepted,
            as :class:`mcp.server.transport_security.TransportSecuritySettings`
            spells them (``127.0.0.1:*`` matches any port).
    """

    def __init__(
        self,
        service: Callable[[], RlmService],
        options: OpenAIOptions | None = None,
        *,
        owns_service: bool = False,
        token: str | None = None,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
    ) -> None:
        self.options = options or OpenAIOptions()
        self._get_service = service
        self._owns = owns_service
        self._owned: RlmService | None = None
        self._token = token.encode() if token else None
        self._hosts = tuple(allowed_hosts)
        self._origins = tuple(allowed_origins)
        self._active = 0
        self._load_lock = asyncio.Lock()

    @property
    def active(self) -> int:
        """Chat completions running now."""
        return self._active

    def _service(self) -> RlmService:
        return self._owned if self._owned is not None else self._get_service()

    # -- ASGI ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        sent = [False]

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent[0] = True
            await send(message)

        try:
            await self._route(scope, receive, tracked)
        except _Gone:
            return
        except ApiError as err:
            if not sent[0]:
                await _send_error(tracked, err)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._owns:
                        self._owned = self._get_service()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                owned, self._owned = self._owned, None
                if owned is not None:
                    await owned.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        self._check_auth(headers)
        self._check_origin(headers)
        path = scope["path"].rstrip("/")
        method = scope["method"]
        if path == "/v1/models" or path.startswith("/v1/models/"):
            if method != "GET":
                raise _not_allowed("GET")
            await self._models(send, path.removeprefix("/v1/models").lstrip("/") or None)
        elif path == "/v1/chat/completions":
            if method != "POST":
                raise _not_allowed("POST")
            await self._chat(scope, headers, receive, send)
        else:
            raise ApiError(404, f"no route {method} {scope['path']}", code="unknown_route")

    # -- checks -------------------------------------------------------------------

    def _check_auth(self, headers: Headers) -> None:
        if self._token is None:
            return
        header = headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return
        error = "invalid_token" if header else "invalid_request"
        raise ApiError(
            401,
            "a valid bearer token is required (Authorization: Bearer <token>)",
            code="invalid_api_key",
            type="authentication_error",
            headers={"WWW-Authenticate": f'Bearer realm="rlm-mcp", error="{error}"'},
        )

    def _check_origin(self, headers: Headers) -> None:
        host = headers.get("host")
        if not host or not _matches(host, self._hosts):
            raise ApiError(421, f"Host {host!r} is not allowed", code="invalid_host")
        origin = headers.get("origin")
        if origin and not _matches(origin, self._origins):
            raise ApiError(
                403,
                f"Origin {origin!r} is not allowed",
                code="invalid_origin",
                type="permission_error",
            )

    # -- models -------------------------------------------------------------------

    def model_ids(self) -> list[str]:
        """The RLM configurations: ``rlm:<root model>`` when a root model is configured."""
        root = self._service().settings.root_model
        return [] if root is None else [wire.MODEL_PREFIX + root.model]

    def _resolve_model(self, asked: str) -> str:
        for model in self.model_ids():
            if asked in (model, model.removeprefix(wire.MODEL_PREFIX)):
                return model
        known = ", ".join(self.model_ids()) or "none: the server has no root model (RLM_MODEL)"
        raise ApiError(
            404,
            f"the model {asked!r} does not exist; models: {known}",
            code="model_not_found",
            param="model",
        )

    async def _models(self, send: Send, one: str | None) -> None:
        cards = [
            {"id": m, "object": "model", "created": 0, "owned_by": "rlm-mcp"}
            for m in self.model_ids()
        ]
        if one is None:
            await _send_json(send, 200, {"object": "list", "data": cards})
            return
        model = self._resolve_model(one)
        await _send_json(send, 200, next(c for c in cards if c["id"] == model))

    # -- chat completions ---------------------------------------------------------

    async def _read_json(self, headers: Headers, receive: Receive) -> Any:
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            raise ApiError(
                400, "Content-Type must be application/json", code="invalid_content_type"
            )
        cap = self.options.max_body_bytes
        too_big = ApiError(413, f"the request body is over {cap} bytes", code="request_too_large")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise too_big
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            body += message.get("body", b"")
            if len(body) > cap:
                raise too_big
            if not message.get("more_body", False):
                break
        try:
            if len(body) > THREAD_PARSE_BYTES:
                return await anyio.to_thread.run_sync(json.loads, bytes(body))
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None

    async def _chat(self, scope: Scope, headers: Headers, receive: Receive, send: Send) -> None:
        body = await self._read_json(headers, receive)
        req = parse_chat_request(body, max_messages=self.options.max_messages)
        model = self._resolve_model(req.model)
        if self._active >= self.options.max_concurrent:
            raise ApiError(
                429,
                f"{self._active} queries are running, the most this server allows; retry later",
                code="too_many_concurrent_queries",
                type="rate_limit_error",
                headers={"Retry-After": "1"},
            )
        self._active += 1
        try:
            target = self._target(req)
            if req.stream:
                await self._stream(send, receive, req, model, target)
            else:
                await self._complete(send, receive, req, model, target)
        finally:
            self._active -= 1

    def _target(self, req: ChatRequest) -> Path | None:
        if req.repository is None:
            return None
        try:
            return self._service().check_allowed(req.repository)
        except (PathNotAllowed, RepositoryNotFound) as exc:
            raise _error_for(exc) from None

    async def _loaded(self, service: RlmService, target: Path) -> str:
        """The name of the loaded repository at ``target``, loading it first if needed."""
        async with self._load_lock:
            for status in service.list():
                if Path(status.root) == target:
                    return status.name
            loaded, _ = await service.load(target)
            return loaded.name

    async def _query(
        self,
        req: ChatRequest,
        target: Path | None,
        progress: Callable[[ProgressEvent], Awaitable[None]] | None,
    ) -> RLMResult:
        service = self._service()
        context = transcript(req.earlier) if req.earlier else None
        label = f"the conversation before the question ({len(req.earlier)} messages)"
        if target is None:
            return await service.query(
                req.question,
                None,
                req.limits,
                progress=progress,
                context=context or "",
                context_label=label,
                session=req.session,
                sampling=req.sampling,
                scratch=True,
            )
        name = await self._loaded(service, target)
        return await service.query(
            req.question,
            name,
            req.limits,
            progress=progress,
            context=context,
            context_label=label if context else "",
            session=req.session,
            sampling=req.sampling,
        )

    async def _complete(
        self, send: Send, receive: Receive, req: ChatRequest, model: str, target: Path | None
    ) -> None:
        created = wire.now()
        result: RLMResult | None = None
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            try:
                result = await self._query(req, target, None)
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise _error_for(failure)
        if result is None:
            raise _Gone
        done = wire.outcome(result, req.max_tokens)
        await _send_json(
            send, 200, wire.completion(wire.completion_id(), model, created, result, done)
        )

    async def _stream(
        self, send: Send, receive: Receive, req: ChatRequest, model: str, target: Path | None
    ) -> None:
        cid, created = wire.completion_id(), wire.now()
        lines_in, lines_out = anyio.create_memory_object_stream[bytes](64)
        finished = anyio.Event()
        box: dict[str, Any] = {}

        async def progress(event: ProgressEvent) -> None:
            try:
                lines_in.send_nowait(_progress_line(event))
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

        async def work() -> None:
            try:
                box["result"] = await self._query(req, target, progress)
            except Exception as exc:
                box["error"] = _error_for(exc)
            finally:
                finished.set()
                lines_in.close()

        early: ApiError | None = None
        async with anyio.create_task_group() as tg, lines_in, lines_out:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            tg.start_soon(work)
            # Not capped by the heartbeat: before the headers there is nothing to keep
            # alive, and a client waits for them under its own read timeout.
            with anyio.move_on_after(HOLD_SECONDS):
                await finished.wait()
            if finished.is_set():  # a failure this early is a proper HTTP error
                early = box.get("error")
                try:
                    if early is None:
                        wire.outcome(box["result"], req.max_tokens)
                except ApiError as err:
                    early = err
            if early is None:
                try:
                    await self._send_stream(send, lines_out, cid, model, created, req, box)
                except OSError:  # the client went away while we wrote
                    pass
            tg.cancel_scope.cancel()
        if early is not None:
            raise early

    async def _send_stream(
        self,
        send: Send,
        lines: Any,
        cid: str,
        model: str,
        created: int,
        req: ChatRequest,
        box: dict[str, Any],
    ) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        first = wire.chunk(cid, model, created, {"role": "assistant", "content": ""})
        await _body(send, wire.sse(first))
        await self._wait_streaming(send, lines)
        await _body(send, self._tail(cid, model, created, req, box), more=False)

    async def _wait_streaming(self, send: Send, lines: Any) -> None:
        """Relay progress lines, with a heartbeat comment whenever none came for a while."""
        while True:
            with anyio.move_on_after(self.options.heartbeat_seconds) as wait:
                try:
                    line = await lines.receive()
                except anyio.EndOfStream:
                    return
            await _body(send, b": heartbeat\n\n" if wait.cancelled_caught else line)

    def _tail(
        self, cid: str, model: str, created: int, req: ChatRequest, box: dict[str, Any]
    ) -> bytes:
        """Everything after the wait: the content chunks, the end, and ``[DONE]``."""
        out = bytearray()
        result: RLMResult | None = box.get("result")
        try:
            if result is None:
                raise box.get("error") or ApiError(500, "the query ended without a result")
            done = wire.outcome(result, req.max_tokens)
        except ApiError as err:
            out += wire.sse(err.body())
            out += wire.sse("[DONE]")
            return bytes(out)
        text = done.content
        for start in range(0, len(text), CONTENT_CHUNK):
            piece = {"content": text[start : start + CONTENT_CHUNK]}
            out += wire.sse(wire.chunk(cid, model, created, piece))
        end = wire.chunk(cid, model, created, {}, done.finish_reason, rlm=wire.extension(result))
        out += wire.sse(end)
        if req.include_usage:
            out += wire.sse(wire.chunk(cid, model, created, None, usage=wire.usage(result)))
        out += wire.sse("[DONE]")
        return bytes(out)


def _not_allowed(method: str) -> ApiError:
    return ApiError(405, f"use {method} here", code="method_not_allowed", headers={"Allow": method})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` (the query and its sub-calls) once the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            log.info("the client went away: cancelling its query")
            scope.cancel()
            return


async def _body(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    pairs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": pairs})
    await send({"type": "http.response.body", "body": raw})


async def _send_error(send: Send, err: ApiError) -> None:
    await _send_json(send, err.status, err.body(), err.headers)
