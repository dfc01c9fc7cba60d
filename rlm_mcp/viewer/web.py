"""``/trajectories/``: the server's own trajectory files as viewer pages.

``GET /trajectories/`` lists the ``*.jsonl`` files of the trajectory directory,
newest first; ``GET /trajectories/<name>`` renders one. A name with a slash, a
backslash or ``..``, or one that is not a file of that directory, is a 404: no
other file can be reached. The caller (:mod:`rlm_mcp.http`) puts the bearer
token in front; this app checks ``Host`` and ``Origin`` against the same lists
as ``/mcp`` (421, 403). A page of a trajectory still being written reloads
itself every two seconds (see :mod:`rlm_mcp.viewer.render`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from rlm_mcp.engine.trajectory import read_trajectory
from rlm_mcp.viewer.render import CSP, render_html

__all__ = ["PREFIX", "TrajectoryApp"]

PREFIX = "/trajectories"
_MAX_LISTED = 1_000
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _matches(value: str, patterns: Sequence[str]) -> bool:
    """``value`` equals a pattern, or a ``base:*`` pattern's base with any port."""
    return any(value == p or (p.endswith(":*") and value.startswith(p[:-1])) for p in patterns)


def safe_name(name: str) -> bool:
    """A bare file name: no separator, no ``..``, no NUL, not hidden."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and ".." not in name
        and "\x00" not in name
        and not name.startswith(".")
    )


def _listing(directory: Path | None) -> list[tuple[str, float, int]]:
    if directory is None or not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.jsonl"):
        try:
            st = path.stat()
        except OSError:
            continue
        found.append((path.name, st.st_mtime, st.st_size))
    found.sort(key=lambda f: (f[1], f[0]), reverse=True)
    return found[:_MAX_LISTED]


def _index_page(directory: Path | None) -> str:
    files = _listing(directory)
    rows = "".join(
        f'<li><a href="{escape(quote(name))}">{escape(name)}</a> '
        f"<small>{escape(time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(mtime)))} UTC · "
        f"{size:,} bytes</small></li>"
        for name, mtime, size in files
    )
    where = "no trajectory directory" if directory is None else f"{len(files)} in {directory}"
    body = f"<ol>{rows}</ol>" if rows else "<p>no trajectories yet</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>trajectories</title><style>body{font:14px system-ui,sans-serif;margin:1.5em}"
        "</style></head><body><h1>Trajectories</h1>"
        f"<p>{escape(where)}, newest first</p>{body}</body></html>\n"
    )


def _one_page(directory: Path | None, name: str) -> str | None:
    if directory is None or not safe_name(name):
        return None
    path = directory / name
    if path.suffix != ".jsonl" or not path.is_file():
        return None
    try:
        events = list(read_trajectory(path))
    except (OSError, UnicodeDecodeError):
        return None
    return render_html(events, title=name)


class TrajectoryApp:
    """The ASGI app for paths under :data:`PREFIX`."""

    def __init__(
        self,
        directory: Callable[[], Path | None],
        *,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
    ) -> None:
        self._directory = directory
        self._hosts = tuple(allowed_hosts)
        self._origins = tuple(allowed_origins)

    def _refused(self, headers: Headers) -> Response | None:
        host = headers.get("host")
        if not host or not _matches(host, self._hosts):
            return PlainTextResponse("Invalid Host header", status_code=421)
        origin = headers.get("origin")
        if origin and not _matches(origin, self._origins):
            return PlainTextResponse("Invalid Origin header", status_code=403)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._respond(scope)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope) -> Response:
        refused = self._refused(Headers(scope=scope))
        if refused is not None:
            return refused
        if scope.get("method") not in ("GET", "HEAD"):
            return PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "GET, HEAD"})
        path: str = scope.get("path", "")
        if path == PREFIX:
            return RedirectResponse(PREFIX + "/", status_code=308)
        name = path[len(PREFIX) + 1 :]
        directory = self._directory()
        if not name:
            page: str | None = await asyncio.to_thread(_index_page, directory)
        else:
            page = await asyncio.to_thread(_one_page, directory, name)
        if page is None:
            return PlainTextResponse("no such trajectory", status_code=404, headers=_HEADERS)
        return HTMLResponse(page, headers=_HEADERS)
