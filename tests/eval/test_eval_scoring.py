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
    from rlm_mcp.backends.base import CompletionRequest, Message
    from rlm_mcp.testing import ScriptedBackend

    inner = ScriptedBackend(["ok"])
    wrapped = StopBackend(inner)
    got = await wrapped.complete(CompletionRequest(messages=(Message("user", "hi"),)))
    assert got.text == "ok"
    assert set(STOP_SEQUENCES) <= set(inner.history[0].stop)


def test_citations_are_parsed_in_order_of_appearance() -> None:
    from benchmarks.eval.scoring import cited_paths, parse_citations

    text = (
        "See `lib/b.js`, line 40, then src/a.py:12-20 and native/ring.c#L3; "
        "also web/x.ts L7, pkg/mod.py (line 9) and again src/a.py. Not x/y.json."
    )
    assert parse_citations(text) == [
        ("lib/b.js", 40),
        ("src/a.py", 12),
        ("native/ring.c", 3),
        ("web/x.ts", 7),
        ("pkg/mod.py", 9),
        ("src/a.py", None),
    ]
    assert cited_paths(text) == ["lib/b.js", "src/a.py", "native/ring.c", "web/x.ts", "pkg/mod.py"]


def test_locate_scores_recall_at_k_and_exact_location() -> None:
    q = _q("locations", {"path": "pkg/geo.py", "line": 12, "start": 10, "end": 20})
    exact = score(q, "pkg/geo.py:15")
    assert exact.exact and exact.value == 1.0
    assert exact.metrics == {"recall@1": 1.0, "recall@3": 1.0, "recall@5": 1.0, "exact": 1.0}
    third = score(q, "a.py:1\nb/c.py:2\n./pkg/geo.py:11\nd.py:4")
    assert not third.exact and third.value == 0.0  # the first path:line decides
    assert [third.metrics[f"recall@{k}"] for k in (1, 3, 5)] == [0.0, 1.0, 1.0]
    wrong_line = score(q, "It is in pkg/geo.py, line 30")
    assert wrong_line.metrics["recall@1"] == 1.0 and not wrong_line.exact
    assert wrong_line.detail == "right file, no line in range"
    # the same path cited twice counts once; bare file names do not match
    assert score(q, "a.py:1 a.py:2 b.py:3 geo.py:12").metrics["recall@5"] == 0.0
    assert score(q, "nothing here").detail == "no path found"


def test_how_recall_counts_reference_files_among_the_first_k_paths() -> None:
    q = _q("paths", {"path": "a/main.py", "paths": ["a/main.py", "a/util.py", "a/io.py"]})
    s = score(q, "a/util.py\nz/other.py\na/main.py\na/io.py")
    assert s.metrics["recall@1"] == 1.0  # min(k, 3) = 1 reference file expected at k=1
    assert abs(s.metrics["recall@3"] - 2 / 3) < 1e-9
    assert s.metrics["recall@5"] == 1.0 and s.value == 1.0 and s.exact
    assert s.metrics["primary@1"] == 0.0
    assert score(q, "a/main.py").value == 1 / 3


def test_impact_f1_accepts_names_or_locations_inside_callers() -> None:
    callers = [
        {"name": "outline_length", "qualname": "outline_length", "path": "p/s.py", "start": 5,
         "end": 9},
        {"name": "place", "qualname": "Canvas.place", "path": "p/s.py", "start": 20, "end": 24},
        {"name": "takeNextJob", "qualname": "takeNextJob", "path": "w/q.js", "start": 3, "end": 8},
    ]  # fmt: skip
    exp = {"callers": callers, "names": [], "paths": ["p/s.py", "w/q.js"]}
    q = _q("callers", exp)
    full = score(q, "outline_length (p/s.py:5), Canvas.place (p/s.py:21), w/q.js:4")
    assert full.exact and full.value == 1.0
    assert full.metrics["recall@1"] == 1.0 and full.metrics["recall@3"] == 1.0
    half = score(q, "outline_length, unrelated_fn")
    assert not half.exact
    p, r = 0.5, 1 / 3
    assert abs(half.value - 2 * p * r / (p + r)) < 1e-9
    assert half.metrics["recall@5"] == 0.0  # no paths cited
    lines_only = score(q, "p/s.py:7\np/s.py:30\nw/q.js:5")  # the ranked-grep shape
    assert abs(lines_only.metrics["precision"] - 2 / 3) < 1e-9
    assert abs(lines_only.metrics["recall"] - 2 / 3) < 1e-9
    assert score(q, "I don't know.").value == 0.0
