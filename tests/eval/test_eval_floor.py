"""The ranked-grep floor: files ranked by distinct question words, independent of the index."""

from __future__ import annotations

from pathlib import Path

from benchmarks.eval.floor import question_words, ranked_grep, ranked_grep_answer


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_question_words_drop_stop_and_template_words() -> None:
    q = "Where is the code that computes the Surface enclosed by a closed loop?"
    assert question_words(q) == ["computes", "surface", "enclosed", "closed", "loop"]
    impact = (
        "Which functions would break if `take_next` (defined in `q.js`) changed its return type?"
    )
    assert question_words(impact) == ["take_next"]


def test_files_rank_by_distinct_words_then_by_their_best_line(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "r",
        {
            "a.py": "surface\nloop\nclosed\n",  # three words, one per line
            "b.py": "x = 1\n# the closed loop encloses a surface\n",  # the same three, one line
            "c/d.js": "// surface only\n",
            "e.txt": "surface enclosed closed loop computes\n",  # not a source file
            "f.py": "nothing to see\n",
        },
    )
    q = "Where is the code that computes the surface enclosed by a closed loop?"
    hits = ranked_grep(root, q, k=5)
    assert [(h.path, h.line, h.words) for h in hits] == [
        ("b.py", 2, 3),  # a tie on words, broken by the line holding all three
        ("a.py", 1, 3),
        ("c/d.js", 1, 1),
    ]
    assert ranked_grep_answer(root, q).splitlines() == ["b.py:2", "a.py:1", "c/d.js:1"]


def test_identifier_questions_list_the_lines_that_use_it(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "r",
        {
            "q.js": "function takeNext() {}\nfunction drain() { takeNext(); }\n",
            "w.js": "const x = takeNextish();\nrun(takeNext)\n",
        },
    )
    q = "Which functions would break if `takeNext` (defined in `q.js`) changed its return type?"
    assert ranked_grep_answer(root, q).splitlines() == ["q.js:1", "q.js:2", "w.js:2"]
