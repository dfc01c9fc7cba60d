"""Resources over Streamable HTTP: a real ``rlm-mcp serve --transport http`` subprocess with
watching on, and the SDK client in both protocol eras. A loaded repository is listed and read
as ``repo://NAME`` and its files as ``repo://NAME/PATH``; an edit on disk reaches a
``subscriptions/listen`` subscriber (2026) and a ``resources/subscribe`` one (2025) as a pushed
update, and the index version they then read has moved."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated

from tests.mcp.results import structured
from tests.mcp.serve_helpers import server_env, serving_http
from tests.polling import apoll

TOKEN = "resources-over-http"


@dataclass
class Served:
    port: int
    tmp: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("http-resources")
    env = server_env(tmp, RLM_NO_WATCH="")  # watching on: edits must reach subscribers
    with serving_http(tmp, env, TOKEN) as port:
        yield Served(port, tmp)


@asynccontextmanager
async def connect(
    served: Served, mode: Literal["auto", "legacy"] = "auto", **options: Any
) -> AsyncIterator[Client]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(served.url, http_client=http), mode=mode, **options) as c,
    ):
        yield c


def repository(served: Served, name: str) -> Path:
    root = served.tmp / name
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "core.py").write_text("class Engine:\n    def start(self):\n        pass\n")
    return root


async def status(client: Client, name: str) -> dict[str, Any]:
    result = await client.read_resource(f"repo://{name}")
    return dict(json.loads(result.contents[0].text))  # type: ignore[union-attr]


async def loaded(client: Client, root: Path) -> int:
    """Load ``root``, wait until it is ready, and return its index version."""
    structured(await client.call_tool("rlm_load", {"path": str(root)}))

    async def ready() -> bool:
        return (await status(client, root.name))["status"] == "ready"

    assert await apoll(ready, timeout=30), "the repository never became ready"
    return int((await status(client, root.name))["index_version"])


async def test_repositories_and_files_are_resources_over_http(served: Served) -> None:
    root = repository(served, "listed")
    async with connect(served) as client:
        await loaded(client, root)
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        assert "repo://listed" in uris
        shown = await status(client, "listed")
        assert shown["files"] == 1 and shown["freshness"]["watching"] is True
        text = await client.read_resource("repo://listed/pkg/core.py")
        assert text.contents[0].text.startswith("class Engine:")  # type: ignore[union-attr]


async def test_an_edit_reaches_a_2026_listen_subscriber_over_http(served: Served) -> None:
    root = repository(served, "listened")
    async with connect(served) as client:
        before = await loaded(client, root)
        async with client.listen(resource_subscriptions=["repo://listened"]) as sub:
            (root / "pkg" / "extra.py").write_text("def extra():\n    return 1\n")
            with anyio.fail_after(30):
                async for event in sub:
                    if isinstance(event, ResourceUpdated) and event.uri == "repo://listened":
                        now = await status(client, "listened")
                        if now["index_version"] > before:
                            break
        found = structured(await client.call_tool("rlm_symbols", {"query": "extra"}))
        assert any(s["name"] == "extra" for s in found["symbols"])


async def test_an_edit_reaches_a_2025_subscriber_over_http(served: Served) -> None:
    root = repository(served, "subscribed")
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        msg = getattr(message, "root", message)
        if getattr(msg, "method", "") == "notifications/resources/updated":
            updates.append(str(msg.params.uri))

    async with connect(served, mode="legacy", message_handler=on_message) as client:
        before = await loaded(client, root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is the 2025 era's
            await client.subscribe_resource("repo://subscribed")
        (root / "pkg" / "late.py").write_text("def late():\n    return 2\n")
        assert await apoll(lambda: "repo://subscribed" in updates, timeout=30)

        async def moved() -> bool:
            return bool((await status(client, "subscribed"))["index_version"] > before)

        assert await apoll(moved, timeout=10)
