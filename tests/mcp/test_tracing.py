"""W3C trace context from a request's _meta: in the trajectory's start event and in log lines,
as text or as JSON (--log-format json), through real SDK client sessions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server import MCPServer
from mcp_types import RequestParamsMeta

from rlm_mcp import tracing
from rlm_mcp.testing import LoopbackLLMServer
from tests.llm_script import Script, code
from tests.mcp.results import structured
from tests.mcp.serve_helpers import SERVE, server_env, write_sample

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_a_traceparent_is_read_as_w3c_says() -> None:
    ok = tracing.from_meta({"traceparent": TRACEPARENT, "tracestate": "rojo=00f067aa0ba902b7"})
    assert ok is not None and ok.trace_id == TRACE_ID and ok.span_id == SPAN_ID
    assert ok.as_dict()["tracestate"] == "rojo=00f067aa0ba902b7"
    for bad in (
        "00-" + "0" * 32 + f"-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-" + "0" * 16 + "-01",  # all-zero span id
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is invalid
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        "garbage",
    ):
        assert tracing.from_meta({"traceparent": bad}) is None, bad
    assert tracing.from_meta(None) is None and tracing.from_meta({"traceparent": 7}) is None


async def test_a_traced_query_records_the_trace_in_its_trajectory(
    server: MCPServer[Any], workspace: Path, llm: LoopbackLLMServer, tmp_path: Path
) -> None:
    llm.responder = Script([code("FINAL('pkg/core.py:8')")])
    async with Client(server) as client:
        structured(await client.call_tool("rlm_load", {"path": str(workspace / "alpha")}))
        result = structured(
            await client.call_tool(
                "rlm_query",
                {"question": "Where is helper?"},
                meta=cast(RequestParamsMeta, {"traceparent": TRACEPARENT, "tracestate": "k=v"}),
            )
        )
    start = json.loads(Path(result["trajectory"]).read_text().splitlines()[0])
    assert start["event"] == "start"
    assert start["trace"] == {
        "traceparent": TRACEPARENT,
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "tracestate": "k=v",
    }


async def test_json_log_lines_carry_the_trace_of_the_request_they_serve(tmp_path: Path) -> None:
    repo = write_sample(tmp_path / "shapes")
    env = server_env(tmp_path, RLM_LOG_FORMAT="json", RLM_LOG_LEVEL="INFO")
    params = StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=env)
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            await client.call_tool("rlm_load", {"path": str(repo)})
            await client.call_tool(
                "rlm_search",
                {"pattern": "def area"},
                meta=cast(RequestParamsMeta, {"traceparent": TRACEPARENT}),
            )
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert records, log.read_text()
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    traced = [r for r in records if r.get("trace_id") == TRACE_ID]
    assert any(r["message"].startswith("rlm_search ok in ") for r in traced), records
    assert all(r["span_id"] == SPAN_ID for r in traced)
    untraced = [r for r in records if r["message"].startswith("rlm_load ok in ")]
    assert untraced and "trace_id" not in untraced[0]


def test_a_text_log_line_inside_a_traced_request_ends_with_its_ids() -> None:
    import logging

    record = logging.LogRecord("rlm_mcp.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    with tracing.bound(tracing.from_meta({"traceparent": TRACEPARENT})):
        assert tracing.TraceFilter().filter(record)
    line = tracing.TextFormatter().format(record)
    assert line.endswith(f"rlm_mcp.x: hello you [trace={TRACE_ID} span={SPAN_ID}]")
    assert tracing.current() is None
