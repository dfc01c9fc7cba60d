"""rlm-mcp: ask questions across whole repositories with Recursive Language Models.

The long input never enters the model's context window: it lives as data in a
sandboxed Python REPL that a root model explores with code, calling cheaper
sub-models on the snippets its code isolates.
"""

from __future__ import annotations

from rlm_mcp.api import RLM
from rlm_mcp.budget import Limits, Usage
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings, Settings
from rlm_mcp.engine.core import RLMEngine
from rlm_mcp.engine.result import Evidence, RLMResult
from rlm_mcp.errors import RlmMcpError
from rlm_mcp.index import Repository, load
from rlm_mcp.service import RlmService

__version__ = "0.1.0"

__all__ = [
    "RLM",
    "Evidence",
    "IndexSettings",
    "Limits",
    "ModelEndpoint",
    "RLMEngine",
    "RLMResult",
    "Repository",
    "RlmMcpError",
    "RlmService",
    "SandboxSettings",
    "Settings",
    "Usage",
    "__version__",
    "load",
]
