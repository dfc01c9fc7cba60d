"""The library face: a string in, an answer out."""

from __future__ import annotations

from pathlib import Path

from llm_script import Script, code

import rlm_mcp
from rlm_mcp import RLM, IndexSettings, ModelEndpoint
from rlm_mcp.backends.testing import LoopbackLLMServer


def test_public_api_is_explicit_and_importable() -> None:
    assert sorted(rlm_mcp.__all__) == sorted(set(rlm_mcp.__all__))
    for name in rlm_mcp.__all__:
        assert getattr(rlm_mcp, name) is not None
    assert {"RLM", "RLMEngine", "RlmService", "Limits", "load"} <= set(rlm_mcp.__all__)


def test_completion_over_a_long_text_returns_just_the_answer(tmp_path: Path) -> None:
    with LoopbackLLMServer() as llm:
        script = Script([code('FINAL(str(context.count("needle")))')])
        llm.responder = script
        rlm = RLM(
            ModelEndpoint("root-model", base_url=llm.base_url),
            index=IndexSettings(cache_dir=tmp_path, watch=False),
        )
        text = "hay hay hay\n" * 5000 + "needle " + "hay\n" * 100 + "needle"
        assert rlm.completion("How many needles?", text) == "2"
        system = script.root_bodies[0]["messages"][0]["content"]
        assert "needle" not in system


def test_query_over_a_directory_path_returns_the_full_result(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "a.py").write_text("def only():\n    pass\n")
    with LoopbackLLMServer() as llm:
        llm.responder = Script([code('FINAL(repo.symbols("only")[0]["path"])')])
        rlm = RLM(
            ModelEndpoint("root-model", base_url=llm.base_url),
            index=IndexSettings(cache_dir=tmp_path / "c", watch=False),
        )
        result = rlm.query("Where is only?", str(repo))
    assert result.status == "completed" and result.answer == "a.py"
