"""Over a real ``rlm-mcp serve`` subprocess (stdio), with a client whose reads time out after
5 s: a load longer than the wait returns at once, search answers while it runs, and the end
of the load is pushed to a subscriber, in both protocol eras."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.subscriptions import ResourceUpdated

from tests.mcp.results import structured
from tests.mcp.serve_helpers import SERVE, many_handlers, server_env
from tests.polling import apoll

FILES = 2500
READ_TIMEOUT = 5.0


def _tree(root: Path) -> Path:
    return many_handlers(root, FILES, 40)


def _params(tmp_path: Path) -> StdioServerParameters:
    # watching on (the default), and rlm_load never waits for a load to end
    env = server_env(tmp_path, RLM_NO_WATCH="", RLM_LOAD_WAIT_SECONDS="0")
    return StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=env)


async def _status(client: Client, name: str) -> dict[str, Any]:
    result = await client.read_resource(f"repo://{name}")
    return dict(json.loads(result.contents[0].text))  # type: ignore[union-attr]


async def test_a_slow_load_over_stdio_never_blocks_and_its_end_is_pushed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "big")
    with (tmp_path / "stderr.log").open("w") as err:
        client = Client(
            stdio_client(_params(tmp_path), errlog=err), read_timeout_seconds=READ_TIMEOUT
        )
        async with client:
            async with client.listen(resource_subscriptions=["repo://big"]) as sub:
                first = structured(await client.call_tool("rlm_load", {"path": str(root)}))
                found = structured(
                    await client.call_tool("rlm_search", {"pattern": r"def handler_7\b"})
                )
                assert first["status"] == "loading" and first["name"] == "big"
                assert found["hits"] == ["pkg7/mod7.py:4:def handler_7(event):"]
                if found.get("partial"):  # else the texts were stored by then
                    assert "direct scan" in str(found["partial"])
                # the end of the load arrives as a pushed update, not by polling
                with anyio.fail_after(60):
                    async for event in sub:
                        if isinstance(event, ResourceUpdated):
                            status = await _status(client, "big")
                            if status["status"] == "ready":
                                break
            symbols = structured(await client.call_tool("rlm_symbols", {"query": "handler_7"}))
            assert any(s["name"] == "handler_7" for s in symbols["symbols"]) or symbols.get(
                "partial"
            )


async def test_a_2025_era_client_over_stdio_is_told_of_index_changes(tmp_path: Path) -> None:
    root = tmp_path / "small"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("def a():\n    return 1\n")
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        msg = getattr(message, "root", message)
        if getattr(msg, "method", "") == "notifications/resources/updated":
            updates.append(str(msg.params.uri))

    with (tmp_path / "stderr.log").open("w") as err:
        client = Client(
            stdio_client(_params(tmp_path), errlog=err),
            mode="legacy",
            message_handler=on_message,
            read_timeout_seconds=READ_TIMEOUT,
        )
        async with client:
            structured(await client.call_tool("rlm_load", {"path": str(root)}))

            async def ready() -> bool:
                return (await _status(client, "small"))["status"] == "ready"

            assert await apoll(ready, timeout=30)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is the 2025 era's
                await client.subscribe_resource("repo://small")
            before = (await _status(client, "small"))["index_version"]
            (root / "pkg" / "b.py").write_text("def b():\n    return 2\n")
            assert await apoll(lambda: "repo://small" in updates, timeout=30)

            async def moved() -> bool:
                return bool((await _status(client, "small"))["index_version"] > before)

            assert await apoll(moved, timeout=10)
