"""rlm-mcp: ask questions across whole repositories with Recursive Language Models."""

from __future__ import annotations

__version__ = "0.1.0"
