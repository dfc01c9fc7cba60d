"""The Streamable HTTP transport: the SDK's app behind bearer-token auth, served by uvicorn.

Defences, outermost first:

* an optional bearer token (:class:`BearerAuthMiddleware`), compared in
  constant time; a missing or wrong token gets 401 with ``WWW-Authenticate``;
* the SDK's DNS-rebinding protection: a ``Host`` outside the allowed hosts
  gets 421, an ``Origin`` outside the allowed origins 403;
* the SDK's body limit (413) and its method / content-type / ``Accept``
  checks (405, 400, 406).

The OpenAI-compatible routes under ``/v1`` (:mod:`rlm_mcp.openai`) sit beside
``/mcp`` on the same port and apply the same token and the same ``Host`` /
``Origin`` lists themselves, answering in OpenAI's error shape; ``openai_only``
serves them alone.

``/trajectories/`` (:mod:`rlm_mcp.viewer.web`) lists the server's trajectory
files and renders one as the viewer's HTML page, behind the same token and the
same ``Host`` / ``Origin`` lists.

A server bound to a non-loopback address must have a token: anyone who can
reach the port could otherwise read every file under the allowed roots.

:func:`serve_http` checks the token rule, then binds the port itself (a busy
port is an :class:`OSError` naming the address, before anything is
announced), and only then tells the caller where it listens.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rlm_mcp.errors import ConfigError

if TYPE_CHECKING:
    from rlm_mcp.openai import OpenAIOptions
    from rlm_mcp.service import RlmService

__all__ = ["BearerAuthMiddleware", "bind", "build_http_app", "is_loopback", "serve_http"]

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
OPENAI_PREFIX = "/v1"
TRAJECTORIES_PREFIX = "/trajectories"
_LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every HTTP request."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ConfigError("the auth token is empty")
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            await self.app(scope, receive, send)
            return
        error = "invalid_token" if header else "invalid_request"
        response = JSONResponse(
            {"error": error, "error_description": "a valid bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": f'Bearer realm="rlm-mcp", error="{error}"'},
        )
        await response(scope, receive, send)


def _security(
    host: str, port: int, allowed_hosts: Sequence[str], allowed_origins: Sequence[str]
) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        shown = f"[{host}]" if ":" in host else host
        hosts.append(f"{shown}:*")
    hosts.extend(allowed_hosts)
    origins.extend(o.rstrip("/") for o in allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class _Routes:
    """``/v1`` to the OpenAI app, ``/trajectories`` to the viewer, everything else to the MCP
    app (or 404 without one).

    The lifespan goes to the MCP app, whose server creates and closes the shared
    service; without one the OpenAI app owns the service and gets the lifespan.
    """

    def __init__(self, mcp: ASGIApp | None, v1: ASGIApp | None, viewer: ASGIApp) -> None:
        self.mcp = mcp
        self.v1 = v1
        self.viewer = viewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            lifespan = self.mcp or self.v1
            if lifespan is not None:
                await lifespan(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == TRAJECTORIES_PREFIX or path.startswith(TRAJECTORIES_PREFIX + "/"):
            await self.viewer(scope, receive, send)
        elif self.v1 is not None and (
            path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")
        ):
            await self.v1(scope, receive, send)
        elif self.mcp is not None:
            await self.mcp(scope, receive, send)
        elif scope["type"] == "http":
            await JSONResponse(
                {
                    "error": {
                        "message": f"no route {path}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "unknown_route",
                    }
                },
                status_code=404,
            )(scope, receive, send)


def build_http_app(
    server: MCPServer[Any] | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    auth_token: str | None = None,
    allowed_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    service: Callable[[], RlmService] | None = None,
    openai: OpenAIOptions | None = None,
    trajectory_dir: Path | None = None,
) -> ASGIApp:
    """The ASGI app: the SDK's Streamable HTTP app at ``/mcp``, wrapped in the auth check.

    The SDK app's own lifespan starts the session manager, which enters the
    MCP server's lifespan (creating the service); uvicorn must run lifespans.

    With ``service`` (the getter of the service the MCP server's lifespan
    creates, or with ``server=None`` a factory the ``/v1`` app calls once at
    startup and closes at shutdown), the OpenAI-compatible routes are served
    under ``/v1`` with ``openai``'s caps.

    ``/trajectories/`` serves the files of ``trajectory_dir``; without it, of the
    service's ``settings.trajectory_dir`` when there is an MCP server and a
    service getter (read at each request), else none.
    """
    if not is_loopback(host) and not auth_token:
        raise ConfigError(
            f"refusing to serve HTTP on {host} without authentication: set --auth-token or "
            "RLM_AUTH_TOKEN, or bind 127.0.0.1"
        )
    if server is None and service is None:
        raise ConfigError("nothing to serve: neither the MCP server nor the OpenAI routes")
    security = _security(host, port, allowed_hosts, allowed_origins)
    app: ASGIApp | None = None
    if server is not None:
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            max_request_body_size=max_request_body_size,
            transport_security=security,
            host=host,
        )
        if auth_token:
            app = BearerAuthMiddleware(app, auth_token)
    viewer = _viewer(security, auth_token, trajectory_dir, service if server is not None else None)
    if service is None:
        return _Routes(app, None, viewer)
    from rlm_mcp.openai import OpenAIApp

    v1 = OpenAIApp(
        service,
        openai,
        owns_service=server is None,
        token=auth_token,
        allowed_hosts=security.allowed_hosts,
        allowed_origins=security.allowed_origins,
    )
    return _Routes(app, v1, viewer)


def _viewer(
    security: TransportSecuritySettings,
    auth_token: str | None,
    directory: Path | None,
    service: Callable[[], RlmService] | None,
) -> ASGIApp:
    from rlm_mcp.viewer.web import TrajectoryApp

    def where() -> Path | None:
        if directory is not None:
            return directory
        return service().settings.trajectory_dir if service is not None else None

    app: ASGIApp = TrajectoryApp(
        where,
        allowed_hosts=security.allowed_hosts or (),
        allowed_origins=security.allowed_origins or (),
    )
    return BearerAuthMiddleware(app, auth_token) if auth_token else app


def _os_error(code: int | None, message: str) -> OSError:
    """An OSError whose text is ``message`` alone (no ``[Errno n]`` prefix) and keeps ``errno``."""
    err = OSError(message)
    err.errno = code
    return err


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one).

    Raises:
        OSError: the address cannot be bound; the message names it and, for a
            busy port, says so in words.
    """
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise _os_error(exc.errno, f"cannot resolve {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        why = (
            "the port is already in use (another server is listening there; pick another --port)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise _os_error(exc.errno, f"cannot listen on {shown}:{port}: {why}") from None
    sock.set_inheritable(False)
    return sock


def url_for(sock: socket.socket, path: str = MCP_PATH) -> str:
    """``http://host:port/mcp`` for a bound socket (the real port when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


class _Server(uvicorn.Server):
    """uvicorn's server, telling the caller once the app has started on the socket."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._ready is not None:
            self._ready()


async def serve_http(
    server: MCPServer[Any] | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    auth_token: str | None = None,
    allowed_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    log_level: str = "WARNING",
    on_listening: Callable[[str], None] | None = None,
    service: Callable[[], RlmService] | None = None,
    openai: OpenAIOptions | None = None,
    trajectory_dir: Path | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn's logs go through :mod:`logging` to stderr.

    Args:
        on_listening: called with the server's URL once the port is bound and the
            app has started, never before (``.../mcp``, or ``.../v1`` with no
            MCP server).
        service / openai: serve the OpenAI-compatible routes too
            (:func:`build_http_app`).

    Raises:
        ConfigError: a non-loopback address without a token.
        OSError: the port cannot be bound (busy, not permitted).
        RuntimeError: the app failed to start (its lifespan raised).
    """
    app = build_http_app(
        server,
        host=host,
        port=port,
        auth_token=auth_token,
        allowed_origins=allowed_origins,
        allowed_hosts=allowed_hosts,
        service=service,
        openai=openai,
        trajectory_dir=trajectory_dir,
    )
    sock = bind(host, port)
    url = url_for(sock, MCP_PATH if server is not None else OPENAI_PREFIX)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        lifespan="on",
        log_config=None,
        access_log=log_level.upper() == "DEBUG",
        server_header=False,
    )
    ready = (lambda: on_listening(url)) if on_listening is not None else None
    try:
        await _Server(config, ready).serve(sockets=[sock])
    except SystemExit as exc:
        raise RuntimeError(f"the HTTP server failed to start (uvicorn exit {exc.code})") from None
    finally:
        sock.close()
