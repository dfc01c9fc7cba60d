"""Dotted symbol names through the real CLI and a real MCP client session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client

from rlm_mcp.config import IndexSettings, SandboxSettings, Settings
from rlm_mcp.server import create_server
from tests.cli.cli_helpers import isolated_env, run_cli, write_tree

FILES = {
    "rich/console.py": (
        "class Console:\n"
        "    def print_json(self, data):\n"
        "        return data\n"
        "\n"
        "    def print(self, *objects):\n"
        "        self.print_json(objects)\n"
    ),
    "other/printer.py": "class Printer:\n    def print_json(self):\n        pass\n",
}


def test_symbols_references_and_callers_take_qualified_names_from_the_shell(
    tmp_path: Path,
) -> None:
    root = write_tree(tmp_path / "repo", FILES)
    env = isolated_env(tmp_path)
    got = run_cli("symbols", str(root), "Console.print_j", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [
        "rich/console.py:2-3: method Console.print_json: def print_json(self, data):"
    ]
    module = run_cli("symbols", str(root), "rich.console.Console.pr", env=env)
    assert [ln.split(": ")[1] for ln in module.stdout.splitlines()] == [
        "method Console.print_json",
        "method Console.print",
    ]
    folded = run_cli("symbols", str(root), "console.PRINT_JSON", env=env)
    assert folded.returncode == 0 and "Console.print_json" in folded.stdout

    miss = run_cli("symbols", str(root), "Consle.print_json", env=env)
    assert miss.returncode == 1 and miss.stdout == ""
    assert "did you mean Console.print_json" in miss.stderr

    refs = run_cli("references", str(root), "Console.print_j", env=env)
    assert refs.returncode == 0 and refs.stdout == "rich/console.py:6: self.print_json(objects)\n"
    callers = run_cli("callers", str(root), "rich.console.Console.print_json", env=env)
    assert callers.stdout == "rich/console.py:6: in method Console.print\n"


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_mcp_symbols_and_callers_take_qualified_names(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "allowed" / "repo", FILES)
    settings = Settings(
        index=IndexSettings(cache_dir=tmp_path / "cache", debounce_seconds=0.02),
        sandbox=SandboxSettings(),
        root_model=None,
        allowed_roots=(tmp_path / "allowed",),
        trajectory_dir=tmp_path / "trajectories",
    )
    async with Client(create_server(settings)) as client:
        _structured(await client.call_tool("rlm_load", {"path": str(root)}))
        syms = _structured(await client.call_tool("rlm_symbols", {"query": "Console.pr"}))
        assert [s["qualname"] for s in syms["symbols"]] == ["Console.print_json", "Console.print"]
        module = _structured(
            await client.call_tool("rlm_symbols", {"query": "other.printer.Printer.print_json"})
        )
        assert [s["path"] for s in module["symbols"]] == ["other/printer.py"]
        folded = _structured(await client.call_tool("rlm_symbols", {"query": "printer.PRINT_JSON"}))
        assert [s["qualname"] for s in folded["symbols"]] == ["Printer.print_json"]
        callers = _structured(await client.call_tool("rlm_callers", {"name": "Console.print_j"}))
        assert [c for c in callers["callers"]] and len(callers["callers"]) == 1
        refs = _structured(await client.call_tool("rlm_references", {"name": "Console.print_j"}))
        assert refs["references"] == ["rich/console.py:6"]
        miss = await client.call_tool("rlm_symbols", {"query": "Consle.print_json"})
        assert _structured(miss)["symbols"] == []
        assert "Console.print_json" in _structured(miss)["did_you_mean"]
        text = " ".join(getattr(c, "text", "") for c in miss.content)
        assert "did you mean" in text and "Console.print_json" in text
