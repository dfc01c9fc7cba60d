"""The search API: files, read, grep, symbols, references, outline, repo map."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.errors import SearchError
from rlm_mcp.index import GrepHit, Repository
from rlm_mcp.index.parse.worker import estimate_tokens
from rlm_mcp.index.search.grep import required_literal
from tests.index.index_helpers import write

CORE = '''"""Core."""


class Engine:
    """Runs things."""

    def run(self, job):
        return helper(job)


def helper(job):
    return job
'''
USER = """from core import Engine, helper


def main():
    e = Engine()
    e.run(1)
    helper(2)
"""


@pytest.fixture
def repo(tmp_path: Path, loader: Callable[..., Repository]) -> Repository:
    write(
        tmp_path,
        {
            "pkg/core.py": CORE,
            "pkg/user.py": USER,
            "app/cli.py": "from pkg.core import helper\n\nhelper(3)\n",
            "docs/readme.md": "# Engine\nUse the Engine.\n",
            "web/x.js": "function helperJs() { return 1 }\n",
        },
    )
    return loader(tmp_path)


def test_files_match_globs_at_any_depth_and_by_directory(repo: Repository) -> None:
    assert repo.files("*.py") == ["app/cli.py", "pkg/core.py", "pkg/user.py"]
    assert repo.files("pkg/**") == ["pkg/core.py", "pkg/user.py"]
    assert repo.files("pkg") == ["pkg/core.py", "pkg/user.py"]
    assert repo.files("**/*.md") == ["docs/readme.md"]
    assert repo.files("nothing/*") == []


def test_read_numbers_lines_and_honours_the_range(repo: Repository) -> None:
    out = repo.read("pkg/core.py", 4, 5)
    assert out == '   4| class Engine:\n   5|     """Runs things."""'
    assert repo.read("./pkg/core.py", 1, 1) == '   1| """Core."""'


def test_reading_an_unknown_path_raises_search_error_with_a_hint(repo: Repository) -> None:
    with pytest.raises(SearchError, match=r"unknown path.*pkg/core.py"):
        repo.read("core.py")


def test_grep_reports_path_line_and_text(repo: Repository) -> None:
    hits = repo.grep(r"helper\(\d\)")
    assert hits == [
        GrepHit("app/cli.py", 3, "helper(3)"),
        GrepHit("pkg/user.py", 7, "    helper(2)"),
    ]
    assert str(hits[0]) == "app/cli.py:3:helper(3)"


def test_grep_filters_by_glob_limits_results_and_ignores_case(repo: Repository) -> None:
    assert {h.path for h in repo.grep("Engine", glob="*.md")} == {"docs/readme.md"}
    assert len(repo.grep("Engine", max_results=2)) == 2
    assert [h.line for h in repo.grep("^# engine$", ignore_case=True)] == [1]
    assert repo.grep("Engine", glob="nothing/**") == []


def test_grep_without_a_literal_and_with_anchors_finds_each_line_once(repo: Repository) -> None:
    hits = repo.grep(r"^\s+\w+\(\d\)$")
    assert [(h.path, h.line) for h in hits] == [("pkg/user.py", 7)]
    assert len(repo.grep("e")) == len({(h.path, h.line) for h in repo.grep("e", max_results=1000)})


def test_grep_trims_very_long_lines(tmp_path: Path, loader: Callable[..., Repository]) -> None:
    write(tmp_path, {"long.txt": "short\n" * 10 + "needle " + "x" * 2000 + "\n"})
    (hit,) = loader(tmp_path).grep("needle")
    assert len(hit.text) <= 301


def test_required_literal_is_only_what_every_match_contains() -> None:
    assert required_literal(r"def \w+_handler") == "_handler"
    assert required_literal(r"foo|bar") == ""
    assert required_literal(r"(abc)?xyz") == "xyz"
    assert required_literal(r"colou?r") == "colo"
    assert required_literal(r"a\.b\.c") == "a.b.c"


def test_symbols_auto_prefers_exact_then_prefix_then_substring(repo: Repository) -> None:
    names = [d.qualname for d in repo.symbols("helper")]
    assert names[0] == "helper"
    assert "helperJs" in names
    assert [d.qualname for d in repo.symbols("ngin", match="substring")] == ["Engine"]
    assert [d.qualname for d in repo.symbols("Eng", match="prefix")] == ["Engine"]
    assert [d.qualname for d in repo.symbols(r"^Eng\w*e$", match="regex")] == ["Engine"]
    assert [d.qualname for d in repo.symbols("run", kind="method")] == ["Engine.run"]
    assert repo.symbols("helper", path_glob="web/**")[0].name == "helperJs"


def test_an_unknown_match_mode_raises_search_error(repo: Repository) -> None:
    with pytest.raises(SearchError, match="match mode"):
        repo.symbols("x", match="fuzzy")


def test_definition_accepts_a_name_or_a_qualified_name(repo: Repository) -> None:
    assert [(d.path, d.start_line) for d in repo.definition("Engine.run")] == [("pkg/core.py", 7)]
    assert [d.kind for d in repo.definition("Engine")] == ["class"]


def test_references_list_uses_across_files(repo: Repository) -> None:
    refs = {(r.path, r.line) for r in repo.references("helper")}
    assert {("app/cli.py", 3), ("pkg/user.py", 7), ("pkg/core.py", 8)} <= refs


def test_outline_is_ordered_by_line(repo: Repository) -> None:
    assert [d.qualname for d in repo.outline("pkg/core.py")] == ["Engine", "Engine.run", "helper"]


def test_repo_map_ranks_the_most_used_file_first_and_fits_the_budget(repo: Repository) -> None:
    text = repo.repo_map(max_tokens=1024)
    assert text.splitlines()[0] == "pkg/core.py:"
    assert "  class Engine (4)" in text
    small = repo.repo_map(max_tokens=12)
    assert estimate_tokens(small) <= 12
    assert small.startswith("pkg/core.py:")


def test_repo_map_focus_pulls_the_focused_file_to_the_top(repo: Repository) -> None:
    assert repo.repo_map(200, focus="web/x.js").splitlines()[0] == "web/x.js:"
    assert repo.repo_map(200, focus=["app"]).splitlines()[0] == "app/cli.py:"


def test_layout_and_summary_show_directories_with_counts(repo: Repository) -> None:
    layout = repo.layout()
    assert "pkg/ (2 files)" in layout
    assert layout.startswith("./ (5 files")
    assert "python" in repo.summary()
    assert repo.languages["python"] == 3
