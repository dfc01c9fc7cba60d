"""The understanding kinds (locate, impact, how) generated from a Python + JavaScript + C tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.eval.corpus import SOURCE_EXTENSIONS, RepoSpec
from benchmarks.eval.questions import generate_set
from benchmarks.eval.sourcetext import (
    ImportResolver,
    comment_above,
    describe,
    file_comment_blocks,
    identifier_words,
    paraphrase,
)
from benchmarks.eval.understanding import candidates, pick, scan


def _by(cands: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    found = [c for c in cands if c["expected"][key] == value]
    assert len(found) == 1, (key, value, cands)
    return found[0]


def test_locate_questions_describe_definitions_in_three_languages_without_their_names(
    polyglot: Path, tmp_path: Path
) -> None:
    cands = candidates(scan(polyglot, tmp_path / "index"))["locate"]
    assert {c["expected"]["language"] for c in cands} == {"python", "javascript", "c"}

    area = _by(cands, "name", "polygon_area")
    assert area["question"] == (
        "Where is the code that computes the surface enclosed by a closed loop of corner "
        "coordinates?"
    )
    assert area["expected"] | {"doc": ""} == {
        "path": "pkg/shapes.py",
        "line": 6,
        "start": 6,
        "end": 11,
        "name": "polygon_area",
        "kind": "function",
        "language": "python",
        "doc": "",
    }
    # JS and C ranges start at the leading comment and end with the body.
    enqueue = _by(cands, "name", "enqueueJob")
    assert "job" not in str(enqueue["question"]).lower().split()
    assert (enqueue["expected"]["start"], enqueue["expected"]["line"]) == (7, 10)
    assert enqueue["expected"]["end"] == 14
    push = _by(cands, "name", "ring_push_bytes")
    assert "bytes" not in str(push["question"])
    assert (push["expected"]["start"], push["expected"]["line"], push["expected"]["end"]) == (
        13,
        16,
        23,
    )
    # the name's words are gone from every question
    for c in cands:
        words = set(str(c["question"]).lower().replace("?", " ").split())
        assert not words & set(identifier_words(str(c["expected"]["name"]).split(".")[-1]))


def test_impact_callers_are_the_functions_around_call_sites(polyglot: Path, tmp_path: Path) -> None:
    cands = candidates(scan(polyglot, tmp_path / "index"))["impact"]
    got = {c["expected"]["function"]: c["expected"] for c in cands}
    assert set(got) == {"normalise_corners", "pauseBriefly", "ring_step_forward"}
    assert got["normalise_corners"]["names"] == ["outline_length", "place"]
    place = next(c for c in got["normalise_corners"]["callers"] if c["name"] == "place")
    assert (place["qualname"], place["start"], place["end"]) == ("Canvas.place", 40, 42)
    assert got["pauseBriefly"]["names"] == ["retryLater", "takeNextJob"]
    assert got["pauseBriefly"]["paths"] == ["web/queue.js", "web/timer.js"]
    assert got["ring_step_forward"]["names"] == ["ring_pop_byte", "ring_push_bytes"]
    question = _by(cands, "function", "pauseBriefly")["question"]
    assert question == (
        "Which functions would break if `pauseBriefly` (defined in `web/timer.js`) changed "
        "its return type?"
    )


def test_how_reference_sets_are_the_file_and_what_it_imports(
    polyglot: Path, tmp_path: Path
) -> None:
    cands = candidates(scan(polyglot, tmp_path / "index"))["how"]
    refs = {c["expected"]["path"]: c["expected"]["paths"] for c in cands}
    assert refs == {
        "pkg/shapes.py": ["pkg/shapes.py", "pkg/units.py"],
        "pkg/units.py": ["pkg/units.py"],
        "web/queue.js": ["web/queue.js", "web/timer.js"],
        "web/timer.js": ["web/timer.js"],
        "native/ring.c": ["native/ring.c", "native/ring.h"],
    }
    queue = _by(cands, "path", "web/queue.js")
    assert (
        queue["question"]
        == "How does a bounded waiting line that hands out jobs in arrival order work?"
    )


def test_pick_cycles_kinds_and_languages_deterministically(polyglot: Path, tmp_path: Path) -> None:
    cands = candidates(scan(polyglot, tmp_path / "index"))
    picked = pick(cands, "poly", 7, seed=7)
    assert [k for k, _, _ in picked] == ["locate", "impact", "how"] * 2 + ["locate"]
    locate_langs = [c["expected"]["language"] for k, _, c in picked if k == "locate"]
    assert len(set(locate_langs)) == 3  # languages take turns
    assert picked == pick(cands, "poly", 7, seed=7)
    assert picked != pick(cands, "poly", 7, seed=8)
    # a kind that runs out yields its turn
    only_locate = {"locate": cands["locate"], "impact": [], "how": []}
    assert {k for k, _, _ in pick(only_locate, "poly", 4, seed=7)} == {"locate"}


def test_dev_suite_set_is_deterministic_and_records_languages(
    polyglot: Path, tmp_path: Path
) -> None:
    spec = RepoSpec("poly", ("",), f"dir:{polyglot}", SOURCE_EXTENSIONS)
    first = generate_set(tmp_path / "cache", specs=(spec,), per_repo=6, seed=3, suite="dev")
    again = generate_set(tmp_path / "cache", specs=(spec,), per_repo=6, seed=3, suite="dev")
    assert first.digest == again.digest
    assert [q.kind for q in first.questions] == ["locate", "impact", "how"] * 2
    assert {q.format for q in first.questions} == {"locations", "callers", "paths"}
    info = first.repos["poly"]
    assert set(info.languages) == {"python", "javascript", "c"}
    assert info.files == len(list(polyglot.rglob("*.*")))
    assert first.recipe["suite"] == "dev"
    assert first.recipe["repos"][0]["extensions"] == list(SOURCE_EXTENSIONS)


def test_doc_text_helpers() -> None:
    jsdoc = ["@name addDays", "@summary Add the specified number of days to the date.", ""]
    assert describe(jsdoc) == "Add the specified number of days to the date."
    assert describe(["Return the thing.", "", ":param x: the input"]) == "Return the thing."
    assert describe([":param x: only fields"]) == ""
    assert describe(["jinja2.lexer", "~~~~~~~~~~~~", "", "Turns template text into tokens."]) == (
        "Turns template text into tokens."
    )
    assert describe(["Works (e.g. on Linux) as documented. Second."]) == (
        "Works (e.g. on Linux) as documented."
    )
    assert identifier_words("parseHTTPResponse") == ["parse", "http", "response"]
    assert identifier_words("to_bytes") == ["bytes"]
    assert (
        paraphrase("Parses the `raw` value with os.path.join() and {@link Foo} parsers.", ["parse"])
        == "the value with and"
    )
    lines = ["x = 1", "/**", " * Does a thing.", " */", "@decorator()", "function f() {}"]
    assert comment_above(lines, 6) == (["", "Does a thing.", ""], 2)
    assert comment_above(["int x;", "int f(void) {}"], 2) == ([], 2)
    blocks = file_comment_blocks(["// Copyright X", "", "/* About this file. */", "", "int x;"])
    assert blocks == [(["Copyright X"], True), (["About this file."], True)]


def test_import_resolution_per_language() -> None:
    files = {"src/pkg/__init__.py", "src/pkg/a.py", "src/pkg/b.py", "lib/x.ts", "lib/y/index.ts"}
    files |= {"c/m.c", "c/m.h", "inc/other.h"}
    r = ImportResolver(files)
    py = "from . import b\nimport pkg.a\nimport os\n"
    assert r.targets("src/pkg/a.py", py) == {"src/pkg/b.py"}
    assert r.targets("src/pkg/b.py", py) == {"src/pkg/a.py"}  # never itself
    assert r.targets("src/pkg/b.py", "from . import VERSION") == {"src/pkg/__init__.py"}
    assert r.targets("lib/x.ts", "import { y } from './y';\nimport z from 'zod';") == {
        "lib/y/index.ts"
    }
    assert r.targets("c/m.c", '#include "m.h"\n#include "other.h"\n#include <stdio.h>') == {
        "c/m.h",
        "inc/other.h",
    }


def test_a_paraphrase_that_fits_another_doc_is_not_asked(tmp_path: Path) -> None:
    root = tmp_path / "dates"
    root.mkdir()
    (root / "q.js").write_text(
        "/**\n * Get the year quarter of the given calendar date.\n */\n"
        "function getQuarter(d) {\n  return 1;\n}\n\n"
        "/**\n * Get the year of the given calendar date value.\n */\n"
        "function getYear(d) {\n  return 2;\n}\n"
    )
    names = {c["expected"]["name"] for c in candidates(scan(root, tmp_path / "i"))["locate"]}
    # "the year of the given calendar date" is getYear's doc: asking it for getQuarter misleads
    assert "getQuarter" not in names
