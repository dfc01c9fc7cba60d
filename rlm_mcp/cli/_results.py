"""The ``--json`` objects of the index commands: the MCP tools' structured output, field for field.

``rlm-mcp symbols --json`` prints what ``rlm_symbols`` returns as structured
content, and so on for every model-free tool (``tests/cli`` compares them on
the same repository). The shapes are written out here rather than imported
from :mod:`rlm_mcp.server`, which would pull in the MCP SDK for a shell
command; the comparison test keeps the two from drifting.

``search --json`` is the one deliberate difference: its hits are objects
(``path``, ``line``, ``text``) where ``rlm_search`` returns ``"path:line:text"``
strings, because a shell consumer (``jq``) should not split strings on colons
that paths and code contain. Joining ``path:line:text`` gives the MCP string;
``truncated``, ``index_version`` and ``partial`` (always null: the CLI loads the
index completely before it answers) mean the same in both, and ``total`` and
``offset`` are additions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "callers_result",
    "find_result",
    "references_result",
    "search_hit",
    "symbol_out",
    "symbols_result",
    "text_result",
]


def symbol_out(d: Any) -> dict[str, Any]:
    """``SymbolOut``: one definition."""
    return {
        "name": d.name,
        "qualname": d.qualname,
        "kind": d.kind,
        "path": d.path,
        "line": d.start_line,
        "end_line": d.end_line,
        "signature": d.signature,
        "doc": d.doc,
    }


def symbols_result(defs: Iterable[Any], version: int, partial: str | None = None) -> dict[str, Any]:
    """``SymbolsResult`` (``rlm_symbols``, ``rlm_outline``)."""
    return {"symbols": [symbol_out(d) for d in defs], "index_version": version, "partial": partial}


def references_result(
    refs: Iterable[Any], version: int, partial: str | None = None
) -> dict[str, Any]:
    """``ReferencesResult``: ``path:line`` strings."""
    return {
        "references": [f"{r.path}:{r.line}" for r in refs],
        "index_version": version,
        "partial": partial,
    }


def callers_result(
    pairs: Iterable[tuple[Any, Any]], version: int, partial: str | None = None
) -> dict[str, Any]:
    """``CallersResult``: each reference with the definition that contains it."""
    return {
        "callers": [
            {
                "path": ref.path,
                "line": ref.line,
                "caller": d.qualname if d else None,
                "caller_kind": d.kind if d else None,
            }
            for ref, d in pairs
        ],
        "index_version": version,
        "partial": partial,
    }


def text_result(text: str, version: int, partial: str | None = None) -> dict[str, Any]:
    """``TextResult`` (``rlm_read``, ``rlm_repo_map``)."""
    return {"text": text, "index_version": version, "partial": partial}


def search_hit(hit: Any) -> dict[str, Any]:
    """``SearchHitOut``: one ranked hit."""
    return {
        "path": hit.path,
        "line": hit.line,
        "end_line": hit.end_line,
        "qualname": hit.qualname,
        "kind": hit.kind,
        "snippet": hit.snippet,
        "score": hit.score,
    }


def find_result(hits: Iterable[Any], version: int, partial: str | None = None) -> dict[str, Any]:
    """``FindResult`` (``rlm_find``)."""
    return {"hits": [search_hit(h) for h in hits], "index_version": version, "partial": partial}
