"""make_backend and estimate_tokens."""

from __future__ import annotations

import pytest

from rlm_mcp.backends import OpenAICompatibleBackend, estimate_tokens, make_backend
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.errors import BackendNotConfigured


def test_no_endpoint_names_the_settings_to_set() -> None:
    with pytest.raises(BackendNotConfigured) as caught:
        make_backend(None)

    for setting in ("RLM_MODEL", "RLM_BASE_URL", "RLM_API_KEY"):
        assert setting in str(caught.value)


def test_no_sub_endpoint_names_the_sub_model_settings() -> None:
    with pytest.raises(BackendNotConfigured) as caught:
        make_backend(None, role="sub")

    for setting in ("RLM_SUB_MODEL", "RLM_SUB_BASE_URL", "RLM_SUB_API_KEY"):
        assert setting in str(caught.value)


async def test_an_endpoint_gives_an_openai_compatible_backend_with_its_model() -> None:
    backend = make_backend(ModelEndpoint(model="gpt-4.1-mini", base_url="http://127.0.0.1:9/v1"))
    try:
        assert isinstance(backend, OpenAICompatibleBackend)
        assert backend.model == "gpt-4.1-mini"
        assert "sk-" not in repr(backend)
    finally:
        await backend.aclose()


def test_an_empty_model_name_is_not_a_configuration() -> None:
    with pytest.raises(BackendNotConfigured, match="RLM_MODEL"):
        make_backend(ModelEndpoint(model=""))


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_estimate_tokens_counts_about_four_characters_per_token(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens
