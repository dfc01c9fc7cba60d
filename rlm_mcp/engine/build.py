"""The one way to build an engine from settings (service, library API and CLI use it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rlm_mcp.backends import LLMBackend, Pricing, make_backend
from rlm_mcp.budget import Limits
from rlm_mcp.config import DEFAULT_CONTEXT_WINDOW, ModelEndpoint, Settings
from rlm_mcp.engine.core import EngineOptions, ModelSpec, RLMEngine

__all__ = ["build_engine"]


def build_engine(
    settings: Settings,
    limits: Limits,
    *,
    root_backend: LLMBackend | None = None,
    sub_backend: LLMBackend | None = None,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[RLMEngine, list[LLMBackend]]:
    """An engine for ``settings``, and the backends it created (the caller closes them).

    ``root_backend`` / ``sub_backend`` replace the backends the endpoints
    would give (tests, custom providers); the endpoints still size the
    prompts. ``functions``: the caller's REPL functions, already wrapped by
    :func:`~rlm_mcp.engine.hostfns.caller_functions`. Raises :class:`~rlm_mcp.errors.BackendNotConfigured` naming the
    settings when no root model is configured.
    """
    owned: list[LLMBackend] = []
    root_ep = settings.root_model
    sub_ep = settings.sub_model or root_ep
    root = root_backend
    if root is None:
        root = make_backend(root_ep, role="root")
        owned.append(root)
    sub = sub_backend
    if sub is None:
        if settings.sub_model is not None and settings.sub_model != root_ep:
            sub = make_backend(settings.sub_model, role="sub")
            owned.append(sub)
        else:
            sub = root
    engine = RLMEngine(
        _spec(root, root_ep),
        _spec(sub, sub_ep),
        limits=limits,
        sandbox=settings.sandbox,
        options=EngineOptions(
            pricing=Pricing(overrides=settings.prices_usd_per_mtok),
            functions=dict(functions or {}),
            strategy=settings.strategy,
        ),
        trajectory_dir=settings.trajectory_dir,
    )
    return engine, owned


def _spec(backend: LLMBackend, endpoint: ModelEndpoint | None) -> ModelSpec:
    """The endpoint sizes the prompts, even when a caller's backend makes the calls."""
    if endpoint is None:
        return ModelSpec(backend, DEFAULT_CONTEXT_WINDOW)
    return ModelSpec(backend, endpoint.context_window, endpoint.max_output_tokens)
