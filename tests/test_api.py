"""The library face: a string in, an answer out."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlm_mcp
from rlm_mcp import RLM, IndexSettings, ModelEndpoint
from rlm_mcp.errors import BackendError, RepositoryNotFound
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.llm_script import Script, code, last_user


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


def test_a_session_keeps_the_repl_and_recalls_earlier_answers(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "a.py").write_text("def only():\n    pass\n")
    with LoopbackLLMServer() as llm:
        script = Script(
            [
                code('where = repo.symbols("only")[0]["path"]\nFINAL(where)'),
                code('FINAL("still " + where)'),
            ]
        )
        llm.responder = script
        rlm = RLM(
            ModelEndpoint("root-model", base_url=llm.base_url),
            index=IndexSettings(cache_dir=tmp_path / "c", watch=False),
        )
        with rlm.session(repo) as s:
            assert s.completion("Where is only?") == "a.py"
            assert s.completion("And now?") == "still a.py"
            assert s.turns == 2
            assert "Q: Where is only?" in last_user(script.root_bodies[1])
        with pytest.raises(rlm_mcp.errors.ConfigError, match="session is closed"):
            s.completion("after close")


def test_caller_functions_are_callable_from_model_code_with_errors_as_output(
    tmp_path: Path,
) -> None:
    tickets = {"T-1": "retry storms in the client"}

    def lookup_ticket(key: str) -> str:
        """Return a ticket's title."""
        return tickets[key]

    with LoopbackLLMServer() as llm:
        script = Script(
            [
                code(
                    "try:\n    lookup_ticket('T-9')\nexcept Exception as e:\n    missing = repr(e)\n"
                    "FINAL(lookup_ticket('T-1') + ' | ' + missing)"
                )
            ]
        )
        llm.responder = script
        rlm = RLM(
            ModelEndpoint("root-model", base_url=llm.base_url),
            index=IndexSettings(cache_dir=tmp_path, watch=False),
            functions={"lookup_ticket": lookup_ticket},
        )
        answer = rlm.completion("What is T-1 about?", "a text\nwith lines\n")
    assert answer.startswith("retry storms in the client | ")
    assert "T-9" in answer
    system = script.root_bodies[0]["messages"][0]["content"]
    assert "lookup_ticket(key: str) -> str: Return a ticket's title." in system


def test_caller_functions_with_a_taken_or_bad_name_are_refused() -> None:
    with pytest.raises(rlm_mcp.errors.ConfigError, match="taken"):
        RLM(ModelEndpoint("m", base_url="http://127.0.0.1:9"), functions={"FINAL": print})
    with pytest.raises(rlm_mcp.errors.ConfigError, match="identifiers"):
        RLM(ModelEndpoint("m", base_url="http://127.0.0.1:9"), functions={"a-b": print})


def test_rlm_with_no_arguments_reads_the_environment_like_the_cli(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "RLM_MODEL": "env-model",
        "RLM_BASE_URL": "http://127.0.0.1:9/v1",
        "RLM_CACHE_DIR": str(tmp_path / "cache-here"),
        "RLM_MAX_LLM_CALLS": "7",
    }
    rlm = RLM(env=env)
    assert rlm.root_endpoint is not None and rlm.root_endpoint.model == "env-model"
    assert rlm.root_endpoint.base_url == "http://127.0.0.1:9/v1"
    assert rlm.index.cache_dir == tmp_path / "cache-here"
    assert rlm.limits.max_llm_calls == 7
    assert rlm_mcp.Limits is rlm_mcp.budget.Limits


def test_sync_completion_raises_the_typed_provider_error_with_the_real_cause(
    tmp_path: Path,
) -> None:
    rlm = RLM(
        ModelEndpoint("m", base_url=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=0),
        index=IndexSettings(cache_dir=tmp_path, watch=False),
    )
    with pytest.raises(rlm_mcp.errors.BackendUnreachable) as caught:
        rlm.completion("q?", "a text\nwith lines\n")
    assert "ConnectionRefusedError" in str(caught.value)
    assert "no running event loop" not in str(caught.value)


def test_a_hosted_endpoint_without_a_key_fails_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RLM_API_KEY", raising=False)
    with LoopbackLLMServer() as llm:
        # A hosted name that resolves nowhere: any network attempt would be a DNS error.
        rlm = RLM(
            ModelEndpoint("gpt-4.1-mini", base_url="https://api.example.invalid/v1"),
            index=IndexSettings(cache_dir=tmp_path, watch=False),
        )
        with pytest.raises(rlm_mcp.errors.BackendNotConfigured, match="set RLM_API_KEY"):
            rlm.completion("q?", "a text\nwith lines\n")
        openai_rlm = RLM(
            ModelEndpoint("gpt-4.1-mini"), index=IndexSettings(cache_dir=tmp_path, watch=False)
        )
        with pytest.raises(rlm_mcp.errors.BackendNotConfigured, match="OPENAI_API_KEY"):
            openai_rlm.completion("q?", "a text\nwith lines\n")
        assert llm.requests == []


def test_local_and_private_endpoints_need_no_key() -> None:
    from rlm_mcp.backends.openai_compat import is_hosted

    for local in (
        "http://localhost:11434/v1",
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "http://ollama:11434/v1",
        "http://gpu-box.local/v1",
        "http://[::1]:8080/v1",
    ):
        assert not is_hosted(local), local
    for hosted in (None, "https://api.openai.com/v1", "https://openrouter.ai/api/v1"):
        assert is_hosted(hosted), hosted


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
