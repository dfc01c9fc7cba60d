"""The library face: a string in, an answer out."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlm_mcp
from rlm_mcp import RLM, IndexSettings, ModelEndpoint
from rlm_mcp.errors import BackendError, RepositoryNotFound
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.llm_script import Script, code


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


def _rlm(llm: LoopbackLLMServer, tmp_path: Path) -> RLM:
    return RLM(
        ModelEndpoint("root-model", base_url=llm.base_url, max_retries=0),
        index=IndexSettings(cache_dir=tmp_path / "c", watch=False),
    )


def test_completion_raises_on_a_provider_failure_instead_of_returning_empty(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = lambda body: Reply.error(401, "invalid api key")
    with pytest.raises(BackendError, match="401"):
        _rlm(llm, tmp_path).completion("Where?", "some long text\nwith lines\n")


def test_completion_raises_for_an_unreachable_endpoint(tmp_path: Path) -> None:
    rlm = RLM(
        ModelEndpoint("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_seconds=5),
        index=IndexSettings(cache_dir=tmp_path / "c", watch=False),
    )
    with pytest.raises(BackendError):
        rlm.completion("Where?", "text\nmore text\n")


def test_a_mistyped_path_is_an_error_not_a_text_to_analyse(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = Script([code('FINAL("should not run")')])
    with pytest.raises(RepositoryNotFound, match="no such file or directory"):
        _rlm(llm, tmp_path).completion("Where?", str(tmp_path / "src" / "mian.py"))
    with pytest.raises(RepositoryNotFound):
        _rlm(llm, tmp_path).completion("Where?", tmp_path / "nope")
    assert llm.requests == []


async def test_completion_works_inside_a_running_event_loop(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    llm.responder = Script([code('FINAL("from a notebook")')])
    assert _rlm(llm, tmp_path).completion("Hi?", "a text\nof two lines\n") == "from a notebook"


def test_model_code_may_call_only_the_configured_models(
    tmp_path: Path, llm: LoopbackLLMServer
) -> None:
    script = Script(
        [code("try:\n    llm_query('hi', model='gpt')\nexcept Exception as e:\n    FINAL(str(e))")]
    )
    llm.responder = script
    answer = _rlm(llm, tmp_path).completion("Which?", "a text\nof two lines\n")
    assert "only the configured models may be called" in answer
    assert script.sub_prompts == []
