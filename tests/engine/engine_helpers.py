"""Engine fixtures: a loopback LLM scripted per test, a small repository, engines wired to both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.budget import Limits, PriceTable
from rlm_mcp.config import DEFAULT_CONTEXT_WINDOW, IndexSettings, ModelEndpoint, SandboxSettings
from rlm_mcp.engine.core import EngineOptions, ModelSpec, RLMEngine
from rlm_mcp.index import Repository, load
from rlm_mcp.testing import LoopbackLLMServer
from tests.llm_script import Script, code, is_sub_call, last_user

__all__ = ["SAMPLE_FILES", "Script", "code", "is_sub_call", "last_user"]

SAMPLE_FILES = {
    "shop/cart.py": '''"""Shopping cart."""


class Cart:
    """A cart of items."""

    def __init__(self):
        self.items = []

    def add(self, item, qty=1):
        """Add an item."""
        self.items.append((item, qty))

    def total(self, prices):
        return sum(prices[i] * q for i, q in self.items)
''',
    "shop/pricing.py": '''def apply_discount(amount, percent):
    """Apply a percentage discount to an amount."""
    return amount * (100 - percent) / 100


def tax(amount):
    return apply_discount(amount, -20)
''',
    "README.md": "# Shop\nA tiny shop.\n",
}


@pytest.fixture
def small_repo(tmp_path: Path) -> Iterator[Repository]:
    root = tmp_path / "shop-repo"
    for rel, text in SAMPLE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    repo = load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False))
    yield repo
    repo.close()


EngineFactory = Callable[..., RLMEngine]


@pytest.fixture
async def make_engine(llm: LoopbackLLMServer, tmp_path: Path) -> AsyncIterator[EngineFactory]:
    made: list[OpenAICompatibleBackend] = []

    def factory(
        *,
        limits: Limits | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        sub_model: str = "sub-model",
        root_window: int = DEFAULT_CONTEXT_WINDOW,
        sub_window: int = DEFAULT_CONTEXT_WINDOW,
        root_max_output: int | None = None,
        pricing: PriceTable | None = None,
        scout: bool = False,
        strategy: str = "explore",
    ) -> RLMEngine:
        def backend(model: str) -> OpenAICompatibleBackend:
            b = OpenAICompatibleBackend(
                ModelEndpoint(
                    model=model, base_url=llm.base_url, timeout_seconds=timeout, max_retries=retries
                ),
                backoff_base=0.01,
                backoff_cap=0.05,
                max_retry_after=2.0,
            )
            made.append(b)
            return b

        return RLMEngine(
            ModelSpec(backend("root-model"), root_window, root_max_output),
            ModelSpec(backend(sub_model), sub_window),
            limits=limits or Limits(exec_timeout_seconds=10),
            sandbox=SandboxSettings(),
            options=EngineOptions(pricing=pricing, scout=scout, strategy=strategy),
            trajectory_dir=tmp_path / "trajectories",
        )

    yield factory
    for b in made:
        await b.aclose()


def trajectory_events(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
