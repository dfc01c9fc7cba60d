"""The MCP tools and the REPL's repo.grep read globs as `rlm-mcp search -g` does: one
matcher, with braces, negation and the last matching glob winning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.server import MCPServer

FILES = {
    "pkg/retry.py": 'def retry_call():\n    """Retry a call."""\n    return "retry"\n',
    "pkg/retry.pyi": "def retry_call() -> str: ...\n",
    "tests/test_retry.py": 'def test_retry_call():\n    assert "retry"\n',
    "docs/retry.md": "# retry\n",
}


def _paths(hits: list[str]) -> list[str]:
    return sorted({h.split(":", 1)[0] for h in hits})


async def test_search_find_symbols_and_repo_grep_share_one_glob_matcher(
    server: MCPServer[Any], workspace: Path
) -> None:
    root = workspace / "globs"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    globs = ["*.{py,pyi}", "!tests/**"]
    async with Client(server) as client:
        await client.call_tool("rlm_load", {"path": str(root)})
        grep = await client.call_tool("rlm_search", {"pattern": "retry", "glob": globs})
        assert not grep.is_error, grep.content
        assert _paths(grep.structured_content["hits"]) == ["pkg/retry.py", "pkg/retry.pyi"]
        negated = await client.call_tool("rlm_search", {"pattern": "retry", "glob": "!*.py"})
        assert _paths(negated.structured_content["hits"]) == ["docs/retry.md", "pkg/retry.pyi"]
        found = await client.call_tool("rlm_find", {"query": "retry call", "glob": globs})
        assert not found.is_error, found.content
        hits = found.structured_content["hits"]
        assert hits and {h["path"] for h in hits} <= {"pkg/retry.py", "pkg/retry.pyi"}
        symbols = await client.call_tool(
            "rlm_symbols", {"query": "retry_call", "path_glob": ["**", "!pkg/**"]}
        )
        assert not symbols.is_error, symbols.content
        assert {s["path"] for s in symbols.structured_content["symbols"]} <= {"tests/test_retry.py"}
        repl = await client.call_tool(
            "rlm_exec",
            {
                "code": "import json\nprint(json.dumps(sorted({h.split(':')[0] for h in "
                f"repo.grep('retry', glob={globs!r})}})))"
            },
        )
        assert not repl.is_error, repl.content
        assert json.loads(repl.structured_content["stdout"]) == ["pkg/retry.py", "pkg/retry.pyi"]
