"""What a client's model reads: text renderings, the response budget, cursors, structured_output."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server import MCPServer

from rlm_mcp.backends.base import estimate_tokens
from rlm_mcp.config import OutputSettings
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.errors import ConfigError
from rlm_mcp.render import make_cursor, render
from rlm_mcp.server import ERROR_META, create_server
from rlm_mcp.settings_loader import load_config
from tests.mcp.conftest import make_settings
from tests.mcp.serve_helpers import SERVE, server_env, write_sample

FILES = 3000


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if getattr(c, "type", "") == "text"]


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, texts(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def response_tokens(result: Any) -> int:
    sent = sum(estimate_tokens(t) for t in texts(result))
    if result.structured_content is not None:
        sent += estimate_tokens(json.dumps(result.structured_content, separators=(",", ":")))
    return sent


def a_server(tmp_path: Path, workspace: Path, **output: Any) -> MCPServer[Any]:
    settings = make_settings(tmp_path, workspace, None)
    return create_server(replace(settings, output=OutputSettings(**output)))


@pytest.fixture
def wide(workspace: Path) -> Path:
    """A repository of 3,000 files, each with one matching line and one definition."""
    root = workspace / "wide"
    for i in range(FILES):
        path = root / f"d{i // 100:02d}" / f"m{i:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def fn_{i:04d}():\n    return 'NEEDLE {i}'\n")
    return root


async def test_the_text_of_a_listing_is_a_rendering_naming_the_paths_of_the_structured_content(
    tmp_path: Path, workspace: Path
) -> None:
    async with Client(a_server(tmp_path, workspace)) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = await client.call_tool("rlm_symbols", {"query": "e", "match": "substring"})
        symbols = structured(result)["symbols"]
        assert symbols and len(texts(result)) == 1
        text = texts(result)[0]
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        assert "{" not in text
        for s in symbols:
            assert f"{s['path']}:{s['line']}-{s['end_line']} {s['kind']} {s['qualname']}" in text
        search = await client.call_tool("rlm_search", {"pattern": "helper"})
        hits = structured(search)["hits"]
        assert texts(search)[0].splitlines() == [
            f"{len(hits)} of {len(hits)} matching lines",
            *hits,
        ]
        repos = texts(await client.call_tool("rlm_repos", {}))[0]
        assert repos.startswith("1 repositories loaded\nalpha (")


async def test_a_broad_search_pages_under_the_budget_and_its_cursors_walk_every_hit_once(
    tmp_path: Path, workspace: Path, wide: Path
) -> None:
    budget = 2_000
    async with Client(a_server(tmp_path, workspace, max_result_tokens=budget)) as client:
        structured(await client.call_tool("rlm_load", {"path": str(wide)}))
        args = {"pattern": "NEEDLE", "max_results": 10_000}
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            result = await client.call_tool("rlm_search", {**args, "cursor": cursor})
            page = structured(result)
            assert response_tokens(result) <= budget
            assert page["total"] == FILES and page["offset"] == len(seen)
            seen += page["hits"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                assert page["truncated"] is False and page["remaining"] == 0
                break
            assert page["truncated"] is True and page["remaining"] == FILES - len(seen)
            assert f"{page['remaining']} more hits: call again" in texts(result)[0]
            assert f"cursor={cursor!r}" in texts(result)[0]
        assert pages > 5
        assert len(seen) == len(set(seen)) == FILES

        # The same walk over definitions: the full list paged by offset.
        got: list[str] = []
        cursor, pages = None, 0
        while True:
            pages += 1
            query = {"query": "fn_", "match": "prefix", "limit": 5_000, "cursor": cursor}
            result = await client.call_tool("rlm_symbols", query)
            page = structured(result)
            assert response_tokens(result) <= budget
            got += [s["name"] for s in page["symbols"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages > 5
        assert sorted(got) == [f"fn_{i:04d}" for i in range(FILES)]


async def test_a_bad_or_foreign_cursor_is_a_tool_error(tmp_path: Path, workspace: Path) -> None:
    async with Client(a_server(tmp_path, workspace, max_result_tokens=200)) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        bad = await client.call_tool("rlm_references", {"name": "helper", "cursor": "not-ours!"})
        assert bad.is_error and bad.meta is not None
        assert bad.meta[ERROR_META]["error_kind"] == "bad_request"
        assert "invalid cursor" in texts(bad)[0]
        other = make_cursor(1, "0123456789abcdef")
        foreign = await client.call_tool("rlm_search", {"pattern": "return", "cursor": other})
        assert foreign.is_error and "different query" in texts(foreign)[0]


async def test_structured_output_off_sends_the_rendering_alone_and_publishes_no_schemas(
    tmp_path: Path, workspace: Path
) -> None:
    async with Client(a_server(tmp_path, workspace, structured_output="off")) as client:
        tools = (await client.list_tools()).tools
        assert tools and all(t.output_schema is None for t in tools)
        loaded = await client.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        assert not loaded.is_error and loaded.structured_content is None
        assert texts(loaded)[0].startswith("loaded alpha (")
        found = await client.call_tool("rlm_symbols", {"query": "helper"})
        assert found.structured_content is None
        assert texts(found) == ["1 definitions\npkg/core.py:8-9 function helper — def helper():"]


async def test_structured_output_on_adds_the_json_as_a_second_text_block(
    tmp_path: Path, workspace: Path
) -> None:
    async with Client(a_server(tmp_path, workspace, structured_output="on")) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = await client.call_tool("rlm_callers", {"name": "helper"})
        rendering, dump = texts(result)
        assert rendering.splitlines()[1] == "pkg/core.py:5 method Engine.start"
        assert json.loads(dump) == structured(result)


async def test_a_long_read_is_cut_at_a_line_and_says_where_to_go_on(
    tmp_path: Path, workspace: Path
) -> None:
    root = workspace / "long"
    root.mkdir()
    (root / "big.py").write_text("".join(f"x_{i} = {i}  # some words here\n" for i in range(5000)))
    async with Client(a_server(tmp_path, workspace, max_result_tokens=1_000)) as client:
        structured(await client.call_tool("rlm_load", {"path": str(root)}))
        result = await client.call_tool("rlm_read", {"path": "big.py", "start": 11})
        assert response_tokens(result) <= 1_000
        text = structured(result)["text"]
        kept = [line for line in text.splitlines() if "| x_" in line]
        assert kept[0].endswith("| x_10 = 10  # some words here")
        assert f"call rlm_read with start={11 + len(kept)}" in text


def test_the_output_settings_are_read_and_checked() -> None:
    env = {"RLM_STRUCTURED_OUTPUT": "OFF", "RLM_MAX_RESULT_TOKENS": "5000", "HOME": "/nonexistent"}
    output = load_config({}, env).settings.output
    assert output == OutputSettings(max_result_tokens=5000, structured_output="off")
    assert load_config({}, {"HOME": "/nonexistent"}).settings.output == OutputSettings()
    with pytest.raises(ConfigError, match="auto, on or off"):
        load_config({}, {"RLM_STRUCTURED_OUTPUT": "json"})
    with pytest.raises(ConfigError, match="at least 1000"):
        load_config({}, {"RLM_MAX_RESULT_TOKENS": "10"})


async def test_a_served_process_honours_the_output_settings_over_stdio(tmp_path: Path) -> None:
    repo = write_sample(tmp_path / "shapes")
    env = server_env(tmp_path, RLM_STRUCTURED_OUTPUT="off", RLM_MAX_RESULT_TOKENS="1000")
    params = StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=env)
    log = tmp_path / "stderr.log"
    try:
        with log.open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                assert all(t.output_schema is None for t in (await client.list_tools()).tools)
                loaded = await client.call_tool("rlm_load", {"path": str(repo)})
                assert not loaded.is_error and loaded.structured_content is None
                found = await client.call_tool("rlm_search", {"pattern": r"def area"})
                assert found.structured_content is None
                assert texts(found) == [
                    "1 of 1 matching lines\npkg/geometry.py:5:    def area(self):"
                ]
    except Exception as exc:  # the server's own account of why it went away
        raise AssertionError(f"the server's stderr:\n{log.read_text()[-3000:]}") from exc


def test_a_query_renders_its_answer_first_then_status_usage_and_evidence() -> None:
    result = RLMResult(answer="It is in pkg/core.py:8", status="completed").as_dict()
    result.update(evidence=["pkg/core.py:8-9"], session="rlms_x")
    text = render("rlm_query", result)
    lines = text.splitlines()
    assert lines[0] == "It is in pkg/core.py:8"
    assert lines[2].startswith("status: completed; 0 turns")
    assert lines[3].startswith("usage: 0 LLM calls")
    assert "evidence: pkg/core.py:8-9" in lines and "{" not in text
    assert render("rlm_unknown", {"a": 1}) == '{"a":1}'


async def test_the_outline_of_a_huge_file_pages_under_the_budget(
    tmp_path: Path, workspace: Path
) -> None:
    big = workspace / "big"
    big.mkdir()
    (big / "many.py").write_text(
        "".join(f"def f_{i:04d}(x):\n    return x\n\n" for i in range(800))
    )
    budget = 2_000
    async with Client(a_server(tmp_path, workspace, max_result_tokens=budget)) as client:
        structured(await client.call_tool("rlm_load", {"path": str(big)}))
        names: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            result = await client.call_tool("rlm_outline", {"path": "many.py", "cursor": cursor})
            page = structured(result)
            assert response_tokens(result) <= budget
            names += [s["name"] for s in page["symbols"]]
            pages += 1
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        assert pages > 3
        assert names == [f"f_{i:04d}" for i in range(800)], "in source order, each once"
