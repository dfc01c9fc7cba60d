"""Temperature and seed as settings: the environment and the config file, per endpoint,
reach every root and sub call's request body."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_mcp.engine.build import build_engine
from rlm_mcp.errors import ConfigError
from rlm_mcp.index import Repository
from rlm_mcp.settings_loader import load_config
from rlm_mcp.testing import LoopbackLLMServer
from tests.engine.engine_helpers import Script, code, is_sub_call


def _env(llm: LoopbackLLMServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "RLM_MODEL": "root-model",
        "RLM_BASE_URL": llm.base_url,
        "RLM_TRAJECTORY_DIR": str(tmp_path / "trajectories"),
        **extra,
    }


async def _run(llm: LoopbackLLMServer, small_repo: Repository, env: dict[str, str]) -> None:
    config = load_config({}, env)
    engine, owned = build_engine(config.settings, config.limits)
    llm.responder = Script(
        [code('a = llm_query("summarise")\nprint(a)'), code("FINAL('shop/cart.py:4')")],
        sub=lambda p: "fine",
    )
    try:
        result = await engine.run("where is the cart?", small_repo)
    finally:
        for b in owned:
            await b.aclose()
    assert result.status == "completed", result.error


async def test_temperature_and_seed_reach_every_root_and_sub_request(
    llm: LoopbackLLMServer, small_repo: Repository, tmp_path: Path
) -> None:
    env = _env(llm, tmp_path, RLM_TEMPERATURE="0", RLM_SEED="7", RLM_SUB_TEMPERATURE="0.5")
    await _run(llm, small_repo, env)
    bodies = [r.json for r in llm.requests]
    roots = [b for b in bodies if not is_sub_call(b)]
    subs = [b for b in bodies if is_sub_call(b)]
    assert roots and subs
    assert all(b["temperature"] == 0 and b["seed"] == 7 for b in roots), roots
    # the sub model is the root's, sampled as the sub settings say; its seed is the root's
    assert all(b["model"] == "root-model" for b in subs)
    assert all(b["temperature"] == 0.5 and b["seed"] == 7 for b in subs), subs


async def test_the_config_file_sets_sampling_and_without_it_none_is_sent(
    llm: LoopbackLLMServer, small_repo: Repository, tmp_path: Path
) -> None:
    await _run(llm, small_repo, _env(llm, tmp_path))
    assert all("temperature" not in r.json and "seed" not in r.json for r in llm.requests)
    llm.requests.clear()
    cfg = tmp_path / "config.toml"
    cfg.write_text("temperature = 0.2\nsub_seed = 11\n")
    config = load_config({}, _env(llm, tmp_path), cfg)
    assert config.settings.root_model is not None
    assert config.settings.root_model.temperature == 0.2
    assert config.settings.root_model.seed is None
    assert config.settings.sub_model is not None and config.settings.sub_model.seed == 11


def test_bad_sampling_and_strategy_values_are_clear_errors(tmp_path: Path) -> None:
    base = {"HOME": str(tmp_path), "RLM_MODEL": "m"}
    with pytest.raises(ConfigError, match="temperature must be between 0 and 2"):
        load_config({}, {**base, "RLM_TEMPERATURE": "3"})
    with pytest.raises(ConfigError, match="RLM_SEED"):
        load_config({}, {**base, "RLM_SEED": "abc"})
    with pytest.raises(ConfigError, match="strategy must be one of explore, locate-first"):
        load_config({}, {**base, "RLM_STRATEGY": "guess"})
    assert load_config({}, {**base, "RLM_STRATEGY": "Locate-Only"}).settings.strategy == (
        "locate-only"
    )
