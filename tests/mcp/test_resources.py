"""Loaded repositories as resources (repo://NAME, repo://NAME/PATH), and index changes pushed
to subscribers in both protocol eras: subscriptions/listen (2026) and resources/subscribe
(2025), through the SDK's own client."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server import MCPServer
from mcp.shared.subscriptions import ResourceUpdated

from tests.mcp.results import structured
from tests.polling import apoll


def _text(result: Any) -> str:
    return str(result.contents[0].text)


async def _status(client: Client, uri: str) -> dict[str, Any]:
    return dict(json.loads(_text(await client.read_resource(uri))))


async def test_each_repository_is_a_resource_with_status_version_freshness_and_files(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        listed = (await client.list_resources()).resources
        assert [str(r.uri) for r in listed] == ["repo://alpha"]
        status = await _status(client, "repo://alpha")
        assert status["status"] == "ready" and status["files"] == 2
        assert isinstance(status["index_version"], int)
        assert status["freshness"]["watching"] is True
        text = _text(await client.read_resource("repo://alpha/pkg/core.py"))
        assert text.startswith("class Engine:")
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert {"repo://{name}", "repo://{name}/{+path}"} <= templates


async def test_an_index_change_reaches_a_listen_subscriber(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    root = workspace / "alpha"
    async with Client(server_without_llm) as client:
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        before = (await _status(client, "repo://alpha"))["index_version"]
        async with client.listen(resource_subscriptions=["repo://alpha"]) as sub:
            (root / "pkg" / "extra.py").write_text("def extra():\n    return 1\n")
            with anyio.fail_after(15):
                async for event in sub:
                    if isinstance(event, ResourceUpdated) and event.uri == "repo://alpha":
                        status = await _status(client, "repo://alpha")
                        if status["index_version"] > before and status["files"] == 3:
                            break


async def test_an_index_change_reaches_a_2025_era_subscriber(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    root = workspace / "alpha"
    updates: list[str] = []
    listed: list[bool] = []

    async def on_message(message: Any) -> None:
        root_msg = getattr(message, "root", message)
        method = getattr(root_msg, "method", "")
        if method == "notifications/resources/updated":
            updates.append(str(root_msg.params.uri))
        elif method == "notifications/resources/list_changed":
            listed.append(True)

    async with Client(server_without_llm, mode="legacy", message_handler=on_message) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is deprecated at 2026-07-28
            await client.subscribe_resource("repo://alpha")
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        assert await apoll(lambda: bool(listed), timeout=10), "the new repository is announced"
        (root / "pkg" / "extra.py").write_text("def extra():\n    return 1\n")
        assert await apoll(lambda: "repo://alpha" in updates, timeout=15)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.unsubscribe_resource("repo://alpha")
        count = len(updates)
        (root / "pkg" / "more.py").write_text("def more():\n    return 2\n")

        async def indexed() -> bool:
            found = structured(await client.call_tool("rlm_symbols", {"query": "more"}))
            return bool(found["symbols"])

        assert await apoll(indexed, timeout=15)
        await anyio.sleep(0)  # let a (wrong) notification arrive before counting
        assert len(updates) == count, "no updates after unsubscribing"


async def test_reading_an_unknown_repository_or_file_is_a_clear_error(
    server_without_llm: MCPServer[Any], workspace: Path
) -> None:
    async with Client(server_without_llm) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        for uri, words in (
            ("repo://nope", "no loaded repository is named 'nope'"),
            ("repo://alpha/missing.py", "missing.py"),
        ):
            try:
                await client.read_resource(uri)
            except Exception as exc:
                assert words in str(exc), exc
            else:
                raise AssertionError(f"{uri} read without an error")
