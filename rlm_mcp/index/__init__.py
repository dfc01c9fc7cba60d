"""Repository indexing: discovery, SQLite cache, symbols and the search API.

The names below are imported on first use: importing one submodule (the direct
scan of a first search, the file-name escape) must not load the whole index.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_mcp.index.model import (
        Definition,
        FileEntry,
        LoadReport,
        Reference,
        SkippedFile,
        TagsResult,
    )
    from rlm_mcp.index.repository import Repository, load
    from rlm_mcp.index.search.grep import GrepHit, grep_block
    from rlm_mcp.index.search.ranked import SearchHit

_EXPORTS = {
    "Definition": "rlm_mcp.index.model",
    "FileEntry": "rlm_mcp.index.model",
    "LoadReport": "rlm_mcp.index.model",
    "Reference": "rlm_mcp.index.model",
    "SkippedFile": "rlm_mcp.index.model",
    "TagsResult": "rlm_mcp.index.model",
    "Repository": "rlm_mcp.index.repository",
    "load": "rlm_mcp.index.repository",
    "GrepHit": "rlm_mcp.index.search.grep",
    "grep_block": "rlm_mcp.index.search.grep",
    "SearchHit": "rlm_mcp.index.search.ranked",
}

__all__ = [
    "Definition",
    "FileEntry",
    "GrepHit",
    "LoadReport",
    "Reference",
    "Repository",
    "SearchHit",
    "SkippedFile",
    "TagsResult",
    "grep_block",
    "load",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlm_mcp.index' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
