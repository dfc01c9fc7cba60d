"""Engine fixtures: a loopback LLM scripted per test, a small repository, engines wired to both."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.backends.testing import LoopbackLLMServer, Reply
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings
from rlm_mcp.engine.core import RLMEngine
from rlm_mcp.engine.prompts import SUB_SYSTEM
from rlm_mcp.index import Repository, load

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


def is_sub_call(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and messages[0].get("content") == SUB_SYSTEM


def last_user(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


class Script:
    """Answers root turns from a list (in order) and sub-calls with a function.

    Records the root conversations it saw, so tests can assert on what the model was told.
    """

    def __init__(
        self,
        root: list[str | Reply] | Callable[[dict[str, Any]], str | Reply],
        sub: Callable[[str], str | Reply] | None = None,
    ) -> None:
        self.root = root
        self.sub = sub or (lambda prompt: f"sub-answer: {prompt[:40]}")
        self.root_bodies: list[dict[str, Any]] = []
        self.sub_prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str | Reply:
        if is_sub_call(body):
            prompt = last_user(body)
            with self._lock:
                self.sub_prompts.append(prompt)
            return self.sub(prompt)
        with self._lock:
            self.root_bodies.append(body)
            if callable(self.root):
                return self.root(body)
            if not self.root:
                return Reply.error(500, "script: no more root replies")
            return self.root.pop(0)


def code(src: str) -> str:
    return f"Let me run this.\n```python\n{src.strip()}\n```\n"


@pytest.fixture
def llm() -> Iterator[LoopbackLLMServer]:
    with LoopbackLLMServer() as server:
        yield server


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
        **engine_kwargs: Any,
    ) -> RLMEngine:
        def backend(model: str) -> OpenAICompatibleBackend:
            b = OpenAICompatibleBackend(
                ModelEndpoint(model=model, base_url=llm.base_url, timeout_seconds=timeout, max_retries=retries),
                backoff_base=0.01,
                backoff_cap=0.05,
                max_retry_after=2.0,
            )
            made.append(b)
            return b

        engine_kwargs.setdefault("sandbox", SandboxSettings(exec_timeout_seconds=10))
        engine_kwargs.setdefault("trajectory_dir", tmp_path / "trajectories")
        return RLMEngine(backend("root-model"), backend(sub_model), limits=limits, **engine_kwargs)

    yield factory
    for b in made:
        await b.aclose()


def trajectory_events(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
