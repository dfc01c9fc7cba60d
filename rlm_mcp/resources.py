"""Each loaded repository as an MCP resource, and its index changes pushed to subscribers.

* ``repo://NAME`` — the repository's status as JSON: ``status`` (ready / loading /
  failed), ``index_version``, files, symbols, freshness (watch mode, changes
  pending, when the watcher last applied some) and the background pass.
* ``repo://NAME/PATH`` — a file's text as the index holds it.

``resources/list`` lists one resource per repository (loaded or loading). When a
repository's index version, status or pending changes move, or the list of
repositories changes, subscribers are told, over both protocol eras:

* 2026-07-28 and later: ``subscriptions/listen`` streams, through the SDK's
  subscription bus (``notifications/resources/updated`` for a ``repo://NAME`` a
  stream subscribed to, ``notifications/resources/list_changed``);
* 2025 era: ``resources/subscribe`` / ``resources/unsubscribe``, answered here,
  with ``notifications/resources/updated`` sent to each subscribed session.

Changes are found by comparing the service's own state every ``interval``
seconds (cheap: a few numbers per repository), so nothing in the index layer
needs to know about MCP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types import (
    EmptyResult,
    ListResourcesResult,
    PaginatedRequestParams,
    Resource,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from rlm_mcp.errors import RlmMcpError
from rlm_mcp.loads import RepoStatus
from rlm_mcp.service import RlmService

__all__ = ["ResourceHub", "repo_uri"]

log = logging.getLogger(__name__)

SCHEME = "repo://"
WATCH_INTERVAL = 0.5


def repo_uri(name: str) -> str:
    return f"{SCHEME}{name}"


def _state(s: RepoStatus) -> tuple[Any, ...]:
    """What a subscriber is told about when it moves."""
    return (s.status, s.index_version, s.pending_changes, s.files, s.symbols, s.partial, s.fresh)


def _status_json(s: RepoStatus) -> str:
    return json.dumps(
        {
            "name": s.name,
            "root": s.root,
            "status": s.status,
            "index_version": s.index_version,
            "files": s.files,
            "files_total": s.files_total,
            "symbols": s.symbols,
            "tokens": s.tokens,
            "languages": s.languages,
            "updated_at": s.updated_at,
            "freshness": {
                "fresh": s.fresh,
                "watching": s.watching,
                "watch_mode": s.watch_mode,
                "pending_changes": s.pending_changes,
                "last_applied_at": s.last_applied_at,
                "last_error": s.last_error,
            },
            "partial": s.partial,
            "indexing": s.indexing,
        },
        indent=1,
    )


class ResourceHub:
    """The resources of one server and who is subscribed to them."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._legacy: dict[str, set[Any]] = {}
        self._lock = anyio.Lock()

    # -- registration ------------------------------------------------------------------

    def install(self, mcp: MCPServer[RlmService]) -> None:
        """Register the resources and the 2025-era subscription handlers on ``mcp``."""

        @mcp.resource(
            "repo://{name}",
            name="repository",
            description="A loaded repository's status, index version and freshness (JSON)",
            mime_type="application/json",
        )
        async def repository(name: str, ctx: Context[RlmService, Any]) -> str:
            with _not_found():
                return _status_json(_find(ctx.request_context.lifespan_context, name))

        @mcp.resource(
            "repo://{name}/{+path}",
            name="file",
            description="A file of a loaded repository, as the index holds it",
            mime_type="text/plain",
        )
        async def file(name: str, path: str, ctx: Context[RlmService, Any]) -> str:
            service: RlmService = ctx.request_context.lifespan_context
            with _not_found():
                repo = service.get(name).repo
                return await anyio.to_thread.run_sync(repo.text, path)

        # The SDK's MCPServer has no public hook for these methods: the low-level server
        # it wraps serves them once they are registered.
        low = mcp._lowlevel_server
        low.add_request_handler("resources/list", PaginatedRequestParams, self._list)
        low.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        low.add_request_handler(
            "resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe
        )

    async def _list(
        self, ctx: ServerRequestContext[RlmService, Any], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        service: RlmService = ctx.lifespan_context
        return ListResourcesResult(
            resources=[
                Resource(
                    uri=repo_uri(s.name),
                    name=s.name,
                    title=f"{s.name} ({s.status})",
                    description=f"repository {s.root}: status, index version, freshness",
                    mime_type="application/json",
                )
                for s in service.list()
            ]
        )

    async def _subscribe(
        self, ctx: ServerRequestContext[RlmService, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        async with self._lock:
            self._legacy.setdefault(str(params.uri), set()).add(ctx.session)
        return EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[RlmService, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        async with self._lock:
            self._legacy.get(str(params.uri), set()).discard(ctx.session)
        return EmptyResult()

    # -- pushing changes ---------------------------------------------------------------

    async def updated(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        async with self._lock:
            sessions = list(self._legacy.get(uri, ()))
        for session in sessions:
            try:
                await session.send_resource_updated(uri)
            except Exception:  # the client went away: forget it
                async with self._lock:
                    for subs in self._legacy.values():
                        subs.discard(session)

    async def list_changed(self) -> None:
        await self.bus.publish(ResourcesListChanged())
        async with self._lock:
            sessions = {s for subs in self._legacy.values() for s in subs}
        for session in sessions:
            try:
                await session.send_resource_list_changed()
            except Exception:
                log.debug("resource list change not delivered", exc_info=True)

    async def watch(
        self, statuses: Callable[[], list[RepoStatus]], interval: float = WATCH_INTERVAL
    ) -> None:
        """Tell subscribers what moved, comparing ``statuses()`` every ``interval`` seconds."""
        seen: dict[str, tuple[Any, ...]] = {}
        while True:
            try:
                now = {repo_uri(s.name): _state(s) for s in statuses()}
            except Exception:
                log.debug("reading the repositories' state failed", exc_info=True)
                now = seen
            if set(now) != set(seen):
                await self.list_changed()
            for uri, state in now.items():
                # a new repository is news too, to whoever subscribed before it was loaded
                if seen.get(uri) != state:
                    await self.updated(uri)
            seen = now
            await anyio.sleep(interval)


@contextmanager
def _not_found() -> Iterator[None]:
    """Our errors as the SDK's "not found": the client gets our message, not a generic one."""
    try:
        yield
    except RlmMcpError as exc:
        raise ResourceNotFoundError(str(exc)) from None


def _find(service: RlmService, name: str) -> RepoStatus:
    for s in service.list():
        if s.name == name:
            return s
    service.get(name)  # raises the error naming what is loaded
    raise AssertionError("unreachable")
