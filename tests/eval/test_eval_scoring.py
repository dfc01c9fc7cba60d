"""The lenient answer parsers and scores."""

from __future__ import annotations

from benchmarks.eval.questions import Question, first_sentence
from benchmarks.eval.scoring import parse_integer, parse_names, parse_path_lines, score


def _q(fmt: str, expected: dict[str, object]) -> Question:
    return Question("id", "repo", "k", fmt, "q?", expected)


def test_path_line_variants() -> None:
    want = {"path": "email/utils.py", "line": 10, "start": 8, "end": 20}
    q = _q("path_line", want)
    for text in (
        "email/utils.py:10",
        "`./email/utils.py`:12",
        "It is in email/utils.py, line 19.",
        "FINAL: /repo/email/utils.py:8",
    ):
        assert score(q, text).exact, text
    assert score(q, "email/utils.py:21").detail == "right file, wrong line"
    assert score(q, "utils.py:10").value == 0.0  # ambiguous bare file name
    assert score(q, "no idea").parsed is None
    assert parse_path_lines("a.py:1 and b/c.py:2") == [("a.py", 1), ("b/c.py", 2)]


def test_name_lists_and_f1() -> None:
    assert parse_names("`foo`, Bar.baz(), and qux") == ["foo", "baz", "qux"]
    assert parse_names("- a.py:3 helper\n- Cls.run") == ["helper", "run"]
    q = _q("name_list", {"names": ["a_func", "b_func"]})
    assert score(q, "a_func, b_func").exact
    half = score(q, "a_func, c_func")
    assert not half.exact and abs(half.value - 0.5) < 1e-9


def test_integer_and_sentence() -> None:
    assert parse_integer("There are 7 such functions.") == 7
    assert parse_integer("py3.11 none") is None
    assert score(_q("integer", {"count": 3}), "3").exact
    assert first_sentence("Split the string. More text.\n\nBody.") == "Split the string."


def test_prompt_variant_restores_prompts() -> None:
    from benchmarks.eval.methods import PROMPT_VARIANTS, prompt_variant
    from rlm_mcp.engine import prompts

    before = prompts.FIRST_TURN
    with prompt_variant("recipes"):
        assert prompts.FIRST_TURN == PROMPT_VARIANTS["recipes"]["FIRST_TURN"] != before
    assert before == prompts.FIRST_TURN


async def test_stop_backend_adds_stop_sequences() -> None:
    from benchmarks.eval.methods import STOP_SEQUENCES, StopBackend
    from rlm_mcp.backends import ScriptedBackend
    from rlm_mcp.backends.base import CompletionRequest, Message

    inner = ScriptedBackend(["ok"])
    wrapped = StopBackend(inner)
    got = await wrapped.complete(CompletionRequest(messages=(Message("user", "hi"),)))
    assert got.text == "ok"
    assert set(STOP_SEQUENCES) <= set(inner.history[0].stop)
