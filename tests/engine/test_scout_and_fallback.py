"""Scouting and the search fallback: ranked search before the first turn, and never less after."""

from __future__ import annotations

from typing import Any

from rlm_mcp.budget import Limits
from rlm_mcp.engine.prompts import SCOUTED
from rlm_mcp.index import Repository
from rlm_mcp.testing import LoopbackLLMServer, Reply
from tests.engine.engine_helpers import EngineFactory, Script, code, last_user, trajectory_events

QUESTION = "Where is a percentage discount applied to an amount?"
DISCOUNT = "shop/pricing.py:1-3: function apply_discount"
FALLBACK = "Ranked search (no LLM)"
SCOUT_HEADING = SCOUTED.split("\n", 1)[0]


def _first_user(script: Script) -> str:
    return str(script.root_bodies[0]["messages"][1]["content"])


async def test_the_first_message_lists_ranked_candidates_for_the_question(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    script = Script([code('FINAL("done")')])
    llm.responder = script
    result = await make_engine(scout=True).run(QUESTION, small_repo)
    first = _first_user(script)
    assert SCOUT_HEADING in first
    assert f"0. {DISCOUNT}" in first
    assert first.index("Question: ") < first.index(SCOUT_HEADING)
    assert result.candidates and str(result.candidates[0]).startswith(DISCOUNT)
    assert result.as_dict()["candidates"][0] == {
        "path": "shop/pricing.py",
        "line": 1,
        "end_line": 3,
        "qualname": "apply_discount",
        "kind": "function",
        "snippet": result.candidates[0].snippet,
        "score": result.candidates[0].score,
        "signals": ["bm25", "grep"],
    }
    scouted = [e for e in trajectory_events(result.trajectory) if e.get("message") == "scouted"]
    assert len(scouted) == 1 and DISCOUNT in scouted[0]["candidates"][0]


async def test_repl_code_reads_the_candidates_variable(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = Script(
        [code('c = candidates[0]\nFINAL(c["qualname"] + " at line " + str(c["line"]))')]
    )
    result = await make_engine(scout=True).run(QUESTION, small_repo)
    assert (result.status, result.answer) == ("completed", "apply_discount at line 1")


async def test_without_scouting_there_are_no_candidates_and_no_variable(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    script = Script([code('FINAL("candidates" in globals())')])
    llm.responder = script
    result = await make_engine(scout=False).run(QUESTION, small_repo)
    assert result.answer == "False"
    assert result.candidates == []
    assert SCOUT_HEADING not in _first_user(script)


async def test_a_question_search_cannot_place_gets_no_candidate_list(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    script = Script([code('FINAL("nothing")')])
    llm.responder = script
    result = await make_engine(scout=True).run("What is this, and why?", small_repo)
    assert result.candidates == []
    assert SCOUT_HEADING not in _first_user(script)


async def test_a_nested_query_is_not_scouted(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    def root(body: dict[str, Any]) -> str:
        question = body["messages"][1]["content"]
        if "inner" in question:
            return code('FINAL("inner ok")')
        return code(
            'r = rlm_query("inner: where is a percentage discount applied?")\nFINAL("outer " + r)'
        )

    script = Script(root)
    llm.responder = script
    result = await make_engine(scout=True).run(QUESTION, small_repo)
    assert result.answer == "outer inner ok"
    outer, inner = script.root_bodies
    assert SCOUT_HEADING in str(outer["messages"][1]["content"])
    assert SCOUT_HEADING not in str(inner["messages"][1]["content"])


async def test_a_completed_answer_is_returned_as_is_without_the_locations(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = Script([code('FINAL("it is apply_discount")')])
    result = await make_engine(scout=True).run(QUESTION, small_repo)
    assert (result.status, result.answer) == ("completed", "it is apply_discount")
    assert result.candidates


async def test_a_model_that_only_writes_prose_still_yields_the_ranked_locations(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = Script(lambda body: "I believe discounts are computed somewhere in the shop.")
    result = await make_engine(scout=True, limits=Limits(max_iterations=2)).run(
        QUESTION, small_repo
    )
    assert result.status == "limit_reached" and result.limit == "max_iterations"
    assert result.candidates
    assert FALLBACK in result.answer
    assert f"- {DISCOUNT}" in result.answer
    for candidate in result.candidates:
        assert str(candidate) in result.answer


async def test_a_partial_answer_follows_the_locations_labelled_unconfirmed(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = Script(
        lambda body: code('answer["content"] = "probably pricing"\nprint("looking")')
    )
    result = await make_engine(scout=True, limits=Limits(max_iterations=2)).run(
        QUESTION, small_repo
    )
    assert result.status == "limit_reached"
    assert result.answer.startswith("[The query ended without a complete answer")
    assert FALLBACK in result.answer and DISCOUNT in result.answer
    assert result.answer.endswith("[The model's unconfirmed partial answer:]\nprobably pricing")
    assert result.answer.index(DISCOUNT) < result.answer.index("probably pricing")


async def test_a_provider_that_keeps_failing_still_yields_the_ranked_locations(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(500, "boom")
    result = await make_engine(scout=True, retries=1).run(QUESTION, small_repo)
    assert result.status == "error"
    assert result.error is not None and "500" in result.error
    assert len(llm.requests) == 2
    assert result.candidates
    assert FALLBACK in result.answer
    assert f"- {DISCOUNT}" in result.answer
    assert "500" in result.answer


async def test_without_scouting_a_failed_query_has_no_locations_to_offer(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    llm.responder = lambda body: Reply.error(500, "boom")
    result = await make_engine(scout=False, retries=0).run(QUESTION, small_repo)
    assert result.status == "error"
    assert result.candidates == []
    assert FALLBACK not in result.answer


async def test_the_first_turn_sees_candidates_even_when_it_answers_from_them(
    llm: LoopbackLLMServer, make_engine: EngineFactory, small_repo: Repository
) -> None:
    script = Script(
        [
            code('print(repo.read(candidates[0]["path"], 1, 3))'),
            code('FINAL("apply_discount multiplies by (100 - percent) / 100")'),
        ]
    )
    llm.responder = script
    result = await make_engine(scout=True).run(QUESTION, small_repo)
    assert result.status == "completed"
    assert "def apply_discount(amount, percent):" in last_user(script.root_bodies[1])
    assert any(str(e).startswith("shop/pricing.py:1") for e in result.evidence)
