"""LLM backends: the protocol the engine calls, and what implements it.

* :class:`OpenAICompatibleBackend` for any OpenAI-compatible endpoint;
* :class:`Pricing` to turn token usage into USD.

Test doubles (an in-process scripted backend, a loopback OpenAI-compatible HTTP
server) live in :mod:`rlm_mcp.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from rlm_mcp.backends.base import (
    Attempt,
    AttemptListener,
    Completion,
    CompletionRequest,
    LLMBackend,
    Message,
    Role,
    TokenUsage,
    estimate_tokens,
)
from rlm_mcp.backends.pricing import (
    DEFAULT_PRICES_USD_PER_MTOK,
    PRICES_TAKEN_ON,
    ModelPrice,
    Pricing,
)
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.errors import BackendNotConfigured

if TYPE_CHECKING:
    from rlm_mcp.backends.openai_compat import OpenAICompatibleBackend

__all__ = [
    "DEFAULT_PRICES_USD_PER_MTOK",
    "PRICES_TAKEN_ON",
    "Attempt",
    "AttemptListener",
    "Completion",
    "CompletionRequest",
    "LLMBackend",
    "Message",
    "ModelPrice",
    "OpenAICompatibleBackend",
    "Pricing",
    "Role",
    "TokenUsage",
    "estimate_tokens",
    "make_backend",
]


def __getattr__(name: str) -> Any:
    # The openai package takes half a second to import: only a model call needs it, so
    # `rlm-mcp search` and friends never load it.
    if name == "OpenAICompatibleBackend":
        from rlm_mcp.backends.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SETTINGS = {
    "root": ("RLM_MODEL", "RLM_BASE_URL", "RLM_API_KEY"),
    "sub": ("RLM_SUB_MODEL", "RLM_SUB_BASE_URL", "RLM_SUB_API_KEY"),
}


def make_backend(
    endpoint: ModelEndpoint | None, *, role: Literal["root", "sub"] = "root"
) -> LLMBackend:
    """The backend for ``endpoint``.

    Raises:
        BackendNotConfigured: ``endpoint`` is ``None``; the message names the
            settings for ``role`` (the root model or the sub-call model).
    """
    if endpoint is None:
        model, base_url, api_key = _SETTINGS[role]
        which = "sub-call model" if role == "sub" else "model"
        raise BackendNotConfigured(
            f"no {which} is configured: set {model} (e.g. gpt-4.1-mini), plus {base_url} "
            f"for a non-OpenAI endpoint (e.g. http://localhost:11434/v1) and {api_key} "
            "if it needs a key, as environment variables or in the config file"
        )
    if not endpoint.model:
        raise BackendNotConfigured(
            f"the endpoint has an empty model name: set {_SETTINGS[role][0]}"
        )
    from rlm_mcp.backends.openai_compat import OpenAICompatibleBackend

    return OpenAICompatibleBackend(endpoint)
