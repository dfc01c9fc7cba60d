"""An OpenAI-compatible face over the engine: ``/v1/models`` and ``/v1/chat/completions``.

Any OpenAI client can ask the RLM: the last user message is the question, everything
before it the REPL's ``context`` (or, with ``rlm.repository``, a repository is the
subject). :mod:`~rlm_mcp.openai.request` reads and checks a request,
:mod:`~rlm_mcp.openai.response` turns a result into the wire format, and
:mod:`~rlm_mcp.openai.app` is the ASGI app that :mod:`rlm_mcp.http` mounts.
"""

from __future__ import annotations

from rlm_mcp.openai.app import OpenAIApp, OpenAIOptions
from rlm_mcp.openai.request import ApiError

__all__ = ["ApiError", "OpenAIApp", "OpenAIOptions"]
