"""rlm-mcp: ask questions across whole repositories with Recursive Language Models.

The long input never enters the model's context window: it lives as data in a
sandboxed Python REPL that a root model explores with code, calling cheaper
sub-models on the snippets its code isolates.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlm_mcp._version import __version__

if TYPE_CHECKING:
    from rlm_mcp.api import RLM, RLMSession
    from rlm_mcp.budget import Limits, Usage
    from rlm_mcp.config import (
        IndexSettings,
        ModelEndpoint,
        SandboxSettings,
        SessionSettings,
        Settings,
    )
    from rlm_mcp.engine.core import EngineOptions, ModelSpec, RLMEngine
    from rlm_mcp.engine.result import Evidence, RLMResult
    from rlm_mcp.errors import RlmMcpError
    from rlm_mcp.index import Repository, load
    from rlm_mcp.service import RlmService

_EXPORTS = {
    "RLM": "rlm_mcp.api",
    "EngineOptions": "rlm_mcp.engine.core",
    "Evidence": "rlm_mcp.engine.result",
    "IndexSettings": "rlm_mcp.config",
    "Limits": "rlm_mcp.budget",
    "ModelEndpoint": "rlm_mcp.config",
    "ModelSpec": "rlm_mcp.engine.core",
    "RLMEngine": "rlm_mcp.engine.core",
    "RLMResult": "rlm_mcp.engine.result",
    "RLMSession": "rlm_mcp.api",
    "SessionSettings": "rlm_mcp.config",
    "Repository": "rlm_mcp.index",
    "RlmMcpError": "rlm_mcp.errors",
    "RlmService": "rlm_mcp.service",
    "SandboxSettings": "rlm_mcp.config",
    "Settings": "rlm_mcp.config",
    "Usage": "rlm_mcp.budget",
    "load": "rlm_mcp.index",
}


def __getattr__(name: str) -> Any:
    """Import the public API on first use, so ``import rlm_mcp.cli`` stays light."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlm_mcp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "RLM",
    "EngineOptions",
    "Evidence",
    "IndexSettings",
    "Limits",
    "ModelEndpoint",
    "ModelSpec",
    "RLMEngine",
    "RLMResult",
    "RLMSession",
    "Repository",
    "RlmMcpError",
    "RlmService",
    "SandboxSettings",
    "SessionSettings",
    "Settings",
    "Usage",
    "__version__",
    "load",
]
