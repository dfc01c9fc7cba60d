"""The result shapes: what the tools publish, and the values the service and engine fill them from."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from typing import Any

import pytest
from pydantic import TypeAdapter

from rlm_mcp import schemas
from rlm_mcp.budget import ModelUsage, Usage
from rlm_mcp.engine.result import Citation, RLMResult
from rlm_mcp.index import Definition, Reference, SearchHit, SkippedFile
from rlm_mcp.service import LoadSummary, RepoStatus, Unloaded
from sandbox import ExecResult


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (LoadSummary, schemas.LoadResult),
        (SkippedFile, schemas.SkippedFileOut),
        (RepoStatus, schemas.RepoOut),
        (Unloaded, schemas.UnloadResult),
        (ExecResult, schemas.ExecOut),
        (SearchHit, schemas.SearchHitOut),
    ],
)
def test_a_value_the_server_sends_as_is_has_the_fields_of_its_shape_in_order(
    value: Any, shape: type
) -> None:
    # The server adds the session fields to rlm_exec's output itself.
    added = {"session", "session_ttl_seconds"} if shape is schemas.ExecOut else set()
    assert [f.name for f in fields(value)] == [k for k in shape.__annotations__ if k not in added]


def test_the_engine_results_dicts_have_the_keys_of_their_shapes() -> None:
    result = RLMResult(answer="", status="completed")
    # The server adds `partial` and the session fields; the handle never goes into as_dict
    # (which trajectories record).
    assert [*result.as_dict(), "partial", "session", "session_ttl_seconds"] == list(
        schemas.QueryResult.__annotations__
    )
    assert set(Usage().as_dict()) == set(schemas.UsageOut.__annotations__)
    assert set(ModelUsage().as_dict()) == set(schemas.ModelUsageOut.__annotations__)
    assert list(Citation("a.py", True).as_dict()) == list(schemas.CitationOut.__annotations__)


def test_field_docstrings_become_the_descriptions_of_the_output_schema() -> None:
    schema = TypeAdapter(schemas.LoadResult).json_schema()
    assert schema["description"] == "What rlm_load indexed."
    props = schema["properties"]
    assert props["name"]["description"] == "name to pass as `repo` in other tools"
    assert props["partial"]["description"] == schemas.PARTIAL
    assert props["partial"]["default"] is None
    assert "partial" not in schema["required"] and "name" in schema["required"]
    detail = schema["$defs"]["SkippedFileOut"]["properties"]["detail"]
    assert detail["default"] == ""
    assert "description" not in props["root"]


def test_a_definition_has_one_projection_with_line_for_its_start() -> None:
    d = Definition("start", "Engine.start", "method", "pkg/core.py", 4, 5, "def start(self):", "")
    ref = Reference("start", "pkg/run.py", 9)
    assert schemas.symbol(d) == {
        "name": "start",
        "qualname": "Engine.start",
        "kind": "method",
        "path": "pkg/core.py",
        "line": 4,
        "end_line": 5,
        "signature": "def start(self):",
        "doc": "",
    }
    assert schemas.caller(ref, d) == {
        "path": "pkg/run.py",
        "line": 9,
        "caller": "Engine.start",
        "caller_kind": "method",
    }
    assert schemas.caller(ref, None)["caller"] is None
    assert schemas.references_result([ref], 3)["references"] == ["pkg/run.py:9"]


def test_importing_the_schemas_loads_neither_the_index_nor_pydantic() -> None:
    code = (
        "import sys, rlm_mcp.schemas\n"
        "print(sorted(m for m in sys.modules if m.startswith(('rlm_mcp.index', 'pydantic'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
