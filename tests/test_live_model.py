"""Opt-in: the real model end to end through RLMEngine on a tiny repository.

Runs only with ``-m live`` and ``RLM_LIVE_BASE_URL`` set (e.g. a llama.cpp
server at ``http://127.0.0.1:8080/v1``); ``RLM_LIVE_MODEL`` names the model
and ``RLM_LIVE_WINDOW`` its context window (default 8192).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, SandboxSettings
from rlm_mcp.engine.core import ModelSpec, RLMEngine
from rlm_mcp.index import load

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("RLM_LIVE_BASE_URL"), reason="set RLM_LIVE_BASE_URL to run"
    ),
]

FILES = {
    "calc/ops.py": '''"""Arithmetic helpers."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def scale(values, factor):
    """Multiply every value by factor."""
    return [v * factor for v in values]
''',
    "calc/main.py": """from calc.ops import add, scale


def run():
    return add(2, 3), scale([1, 2], 10)
""",
}


async def test_real_model_answers_about_a_tiny_repo(tmp_path: Path) -> None:
    root = tmp_path / "calc-repo"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    window = int(os.environ.get("RLM_LIVE_WINDOW", "8192"))
    backend = OpenAICompatibleBackend(
        ModelEndpoint(
            model=os.environ.get("RLM_LIVE_MODEL", "local"),
            base_url=os.environ["RLM_LIVE_BASE_URL"],
            api_key=os.environ.get("RLM_LIVE_API_KEY"),
            timeout_seconds=300,
            max_retries=1,
        )
    )
    repo = load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False))
    try:
        engine = RLMEngine(
            ModelSpec(backend, int(window * 0.8), max_output_tokens=384),
            ModelSpec(backend, int(window * 0.8), max_output_tokens=256),
            limits=Limits(max_iterations=4, max_llm_calls=8, max_wall_seconds=300),
            sandbox=SandboxSettings(),
            trajectory_dir=tmp_path / "trajectories",
        )
        result = await engine.run("In which file is the function `scale` defined?", repo)
    finally:
        repo.close()
        await backend.aclose()
    assert result.status in ("completed", "limit_reached"), result.error
    assert result.answer.strip()
    assert result.usage.calls >= 1
