from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.server import MCPServer

from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings, Settings
from rlm_mcp.server import create_server
from rlm_mcp.testing import LoopbackLLMServer


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An allowed root holding two small repositories."""
    root = tmp_path / "allowed"
    (root / "alpha" / "pkg").mkdir(parents=True)
    (root / "alpha" / "pkg" / "core.py").write_text(
        'class Engine:\n    """Drives things."""\n\n    def start(self):\n        return helper()\n\n\n'
        "def helper():\n    return 42\n"
    )
    (root / "alpha" / "README.md").write_text("# alpha\n")
    (root / "beta").mkdir()
    (root / "beta" / "main.go").write_text("package main\n\nfunc Serve() {}\n")
    return root


def make_settings(tmp_path: Path, workspace: Path, llm: LoopbackLLMServer | None) -> Settings:
    endpoint = (
        ModelEndpoint(model="root-model", base_url=llm.base_url, timeout_seconds=10, max_retries=0)
        if llm is not None
        else None
    )
    return Settings(
        index=IndexSettings(cache_dir=tmp_path / "cache", debounce_seconds=0.02),
        sandbox=SandboxSettings(),
        root_model=endpoint,
        allowed_roots=(workspace,),
        trajectory_dir=tmp_path / "trajectories",
    )


@pytest.fixture
def server(tmp_path: Path, workspace: Path, llm: LoopbackLLMServer) -> MCPServer[Any]:
    """An MCP server wired to the loopback LLM; tests connect with ``async with Client(server)``.

    (A client fixture would enter the SDK's task group in one task and leave it in another.)
    """
    return create_server(make_settings(tmp_path, workspace, llm))


@pytest.fixture
def server_without_llm(tmp_path: Path, workspace: Path) -> MCPServer[Any]:
    return create_server(make_settings(tmp_path, workspace, None))
