"""Helpers shared by the backend tests (imported, not fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_mcp.backends import CompletionRequest, Message, OpenAICompatibleBackend

BackendFactory = Callable[..., OpenAICompatibleBackend]
"""What the ``new_backend`` fixture yields: keyword overrides in, backend out."""


def ask(text: str = "What is 6 * 7?", **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(messages=(Message("user", text),), **kwargs)
