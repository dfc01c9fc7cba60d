"""Repository indexing: discovery, SQLite cache, symbols and the search API."""

from __future__ import annotations

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
