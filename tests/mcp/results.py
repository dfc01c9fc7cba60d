"""Reading tool results in MCP client tests: the structured content of a success, the text of an error."""

from __future__ import annotations

from typing import Any


def structured(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool result (fails the test on an error)."""
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: Any) -> str:
    """The text of a tool error (fails the test on a success)."""
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)
