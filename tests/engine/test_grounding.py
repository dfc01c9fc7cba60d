"""Grounding: an answer's paths, path:line citations and symbols are checked against the index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.engine.grounding import check_citations
from rlm_mcp.engine.result import Citation
from rlm_mcp.index import Repository, load
from rlm_mcp.testing import LoopbackLLMServer
from tests.engine.engine_helpers import EngineFactory, Script, code, last_user, trajectory_events

NODE = '''"""Tree nodes."""


class Node:
    """One node of a tree."""

    def __init__(self, value):
        self.value = value
        self.children = []

    def add_child(self, node):
        self.children.append(node)
        return node
'''

WALK = '''from src.node import Node


def depth_first(node):
    """Yield nodes depth first."""
    yield node
    for child in node.children:
        yield from depth_first(child)
'''

TREE_FILES = {
    "src/node.py": NODE,
    "src/walk.py": WALK,
    "README.md": "# Trees\nA tiny tree library.\n",
}


@pytest.fixture
def tree_repo(tmp_path: Path) -> Iterator[Repository]:
    root = tmp_path / "tree-repo"
    for rel, text in TREE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    repo = load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False))
    yield repo
    repo.close()


def _verdicts(repo: Repository, text: str) -> dict[str, bool]:
    return {c.text: c.verified for c in check_citations(repo, text)}


# -- check_citations -------------------------------------------------------------------


def test_an_invented_path_is_rejected_with_the_nearest_real_path(tree_repo: Repository) -> None:
    assert check_citations(tree_repo, "It happens in src/nope.py:3.") == [
        Citation("src/nope.py:3", False, ("src/node.py",))
    ]


def test_a_path_in_the_wrong_directory_offers_the_file_of_the_same_name(
    tree_repo: Repository,
) -> None:
    [cite] = check_citations(tree_repo, "see lib/walk.py")
    assert (cite.text, cite.verified, cite.nearest) == ("lib/walk.py", False, ("src/walk.py",))


def test_a_real_path_is_verified_bare_with_a_line_or_with_a_range_inside_the_file(
    tree_repo: Repository,
) -> None:
    text = "See src/node.py, src/node.py:11, ./src/walk.py:4-8 and README.md."
    assert _verdicts(tree_repo, text) == {
        "src/node.py": True,
        "src/node.py:11": True,
        "./src/walk.py:4-8": True,
        "README.md": True,
    }


def test_a_bare_file_name_resolves_when_only_one_file_has_it(tree_repo: Repository) -> None:
    assert _verdicts(tree_repo, "walk.py:4") == {"walk.py:4": True}


def test_a_line_past_the_end_of_a_real_file_is_rejected(tree_repo: Repository) -> None:
    [cite] = check_citations(tree_repo, "src/node.py:500")
    assert not cite.verified
    assert cite.nearest and "500" in cite.nearest[0] and "src/node.py" in cite.nearest[0]


def test_a_line_range_that_runs_past_the_end_of_the_file_is_rejected(
    tree_repo: Repository,
) -> None:
    assert len(NODE.splitlines()) == 13
    assert _verdicts(tree_repo, "src/node.py:11-400") == {"src/node.py:11-400": False}


def test_backticked_symbols_that_exist_are_verified(tree_repo: Repository) -> None:
    text = "`Node.add_child` is called by `depth_first()`; `Node` holds `children`."
    assert _verdicts(tree_repo, text) == {"Node.add_child": True, "depth_first": True}


def test_an_unknown_method_is_rejected_with_the_nearest_real_names(tree_repo: Repository) -> None:
    [cite] = check_citations(tree_repo, "call `Node.add_kid` to grow the tree")
    assert (cite.text, cite.verified) == ("Node.add_kid", False)
    assert "Node.add_child" in cite.nearest


def test_a_method_of_an_invented_class_is_not_verified_by_a_real_method_name(
    tree_repo: Repository,
) -> None:
    assert _verdicts(tree_repo, "`Forest.add_child` plants a tree") == {"Forest.add_child": False}


def test_a_misspelt_function_still_offers_the_real_name(tree_repo: Repository) -> None:
    [cite] = check_citations(tree_repo, "`dpeth_first()` walks the tree")
    assert not cite.verified
    assert "depth_first" in cite.nearest


def test_version_numbers_urls_abbreviations_and_plain_words_are_not_citations(
    tree_repo: Repository,
) -> None:
    text = (
        "Version 1.2.3 works, e.g. on https://example.com/pkg/tree.py too; "
        "the `value` is kept and `yield` is used."
    )
    assert check_citations(tree_repo, text) == []


# -- the loop -------------------------------------------------------------------------


async def test_a_final_citing_an_unknown_path_is_shown_back_once_and_the_fixed_answer_accepted(
    llm: LoopbackLLMServer, make_engine: EngineFactory, tree_repo: Repository
) -> None:
    script = Script(
        [
            code('FINAL("Children are added in src/nope.py:3")'),
            code('FINAL("Children are added in src/node.py:11")'),
        ]
    )
    llm.responder = script
    result = await make_engine().run("Where are children added?", tree_repo)
    assert result.status == "completed", result
    assert result.answer == "Children are added in src/node.py:11"
    assert result.iterations == 2
    shown = last_user(script.root_bodies[1])
    assert "[turn 2 of" in shown
    assert "src/nope.py:3: not in the index" in shown
    assert "src/node.py" in shown
    assert result.citations == [Citation("src/node.py:11", True)]
    notes = [e for e in trajectory_events(result.trajectory) if e.get("event") == "note"]
    assert any("unverified citations" in str(e) for e in notes)


async def test_a_second_final_with_unknown_citations_is_accepted_and_flagged(
    llm: LoopbackLLMServer, make_engine: EngineFactory, tree_repo: Repository
) -> None:
    llm.responder = Script(
        [
            code('FINAL("Use `Node.graft` in src/nope.py")'),
            code('FINAL("Still `Node.graft` in src/nope.py")'),
        ]
    )
    result = await make_engine().run("How do I graft a subtree?", tree_repo)
    assert (result.status, result.iterations) == ("completed", 2)
    assert result.answer == "Still `Node.graft` in src/nope.py"
    assert {c.text: c.verified for c in result.citations} == {
        "src/nope.py": False,
        "Node.graft": False,
    }
    by_text = {c.text: c for c in result.citations}
    assert by_text["src/nope.py"].nearest == ("src/node.py",)


async def test_an_answer_citing_only_real_names_is_accepted_at_once(
    llm: LoopbackLLMServer, make_engine: EngineFactory, tree_repo: Repository
) -> None:
    llm.responder = Script([code('FINAL("`Node.add_child` in src/node.py:11-13")')])
    result = await make_engine().run("Where are children added?", tree_repo)
    assert (result.status, result.iterations) == ("completed", 1)
    assert result.citations == [
        Citation("src/node.py:11-13", True),
        Citation("Node.add_child", True),
    ]
    assert result.as_dict()["citations"] == [
        {"text": "src/node.py:11-13", "verified": True, "nearest": []},
        {"text": "Node.add_child", "verified": True, "nearest": []},
    ]


async def test_repo_verify_in_repl_code_sorts_citations_into_verified_and_unknown(
    llm: LoopbackLLMServer, make_engine: EngineFactory, tree_repo: Repository
) -> None:
    script = Script(
        [
            code(
                'v = repo.verify("`depth_first` in src/walk.py:4 and src/nope.py")\n'
                "print(json.dumps(v, sort_keys=True))"
            ),
            code('FINAL("checked")'),
        ]
    )
    llm.responder = script
    result = await make_engine().run("q?", tree_repo)
    assert result.answer == "checked"
    output = last_user(script.root_bodies[1])
    printed = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    assert printed == {
        "verified": ["src/walk.py:4", "depth_first"],
        "unknown": [{"text": "src/nope.py", "nearest": ["src/node.py"]}],
    }


async def test_a_nested_query_answer_is_not_held_back_for_grounding(
    llm: LoopbackLLMServer, make_engine: EngineFactory, tree_repo: Repository
) -> None:
    """Grounding is for the answer the user sees (depth 0); a child's answer goes to code."""

    def root(body: dict[str, Any]) -> str:
        question = body["messages"][1]["content"]
        if "outer question" in question:
            return code('r = rlm_query("inner question")\nFINAL("inner said: " + str(len(r)))')
        assert "inner question" in question
        if "[turn 1 of" in last_user(body):
            return code('FINAL("see src/nope.py:3")')
        return code('FINAL("a second try")')

    script = Script(root)
    llm.responder = script
    result = await make_engine().run("outer question", tree_repo)
    assert result.status == "completed", result
    inner_turns = [b for b in script.root_bodies if "inner question" in b["messages"][1]["content"]]
    assert len(inner_turns) == 1, [last_user(b) for b in inner_turns]
    assert result.answer == f"inner said: {len('see src/nope.py:3')}"
