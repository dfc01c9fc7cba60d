"""Dotted symbol names: a class-qualified prefix, a module path, another case, near misses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.index import Repository
from rlm_mcp.index.search.qualified import module_parts
from tests.index.index_helpers import write

FILES: dict[str, str | bytes] = {
    "rich/__init__.py": "def get_console():\n    return None\n",
    "rich/console.py": (
        "class Console:\n"
        "    def print_json(self, data):\n"
        "        return data\n"
        "\n"
        "    def print(self, *objects):\n"
        "        self.print_json(objects)\n"
        "\n"
        "    class Options:\n"
        "        def update_width(self):\n"
        "            pass\n"
        "\n"
        "\n"
        "def render(c):\n"
        "    c.print_json(1)\n"
    ),
    "other/printer.py": "class Printer:\n    def print_json(self):\n        pass\n",
}


@pytest.fixture
def repo(tmp_path: Path, loader: Callable[..., Repository]) -> Repository:
    write(tmp_path, FILES)
    return loader(tmp_path)


def _names(repo: Repository, query: str, **kw: object) -> list[str]:
    return [f"{d.path}:{d.qualname}" for d in repo.symbols(query, **kw)]  # type: ignore[arg-type]


def test_a_class_qualified_prefix_finds_the_methods_of_that_class_only(repo: Repository) -> None:
    assert _names(repo, "Console.print_j") == ["rich/console.py:Console.print_json"]
    assert _names(repo, "Console.pr") == [
        "rich/console.py:Console.print_json",
        "rich/console.py:Console.print",
    ]
    assert _names(repo, "Printer.print_json") == ["other/printer.py:Printer.print_json"]
    assert _names(repo, "Options.update") == ["rich/console.py:Console.Options.update_width"]
    assert _names(repo, "Console.Options.update_width", match="exact") == [
        "rich/console.py:Console.Options.update_width"
    ]


def test_a_module_qualified_name_is_the_files_path_as_dots(repo: Repository) -> None:
    assert _names(repo, "rich.console.render") == ["rich/console.py:render"]
    assert _names(repo, "console.Console.print_json", match="exact") == [
        "rich/console.py:Console.print_json"
    ]
    assert _names(repo, "rich.get_console") == ["rich/__init__.py:get_console"], "__init__"
    assert _names(repo, "other.printer.Printer") == ["other/printer.py:Printer"]
    assert _names(repo, "nowhere.render") == []


def test_another_case_is_the_fallback_when_the_exact_spelling_finds_nothing(
    repo: Repository,
) -> None:
    assert _names(repo, "console.PRINT_JSON") == ["rich/console.py:Console.print_json"]
    assert _names(repo, "RICH.CONSOLE.render") == ["rich/console.py:render"]


def test_a_miss_lists_the_nearest_qualified_names(repo: Repository) -> None:
    assert _names(repo, "Consle.print_json") == []
    close = repo.did_you_mean("Consle.print_json")
    assert close[0] == "Console.print_json"
    assert repo.did_you_mean("zzz_nothing_like_it") == []


def test_references_and_callers_take_the_same_forms(repo: Repository) -> None:
    uses = [(r.path, r.line) for r in repo.references("Console.print_j")]
    assert uses == [("rich/console.py", 6), ("rich/console.py", 14)]
    assert [(r.path, r.line) for r in repo.references("rich.console.Console.print_json")] == uses
    callers = [(r.line, d.qualname if d else None) for r, d in repo.callers("console.Print_Json")]
    assert callers == [(6, "Console.print"), (14, "render")]
    assert [(r.path, r.line) for r in repo.references("print_json")] == uses, (
        "plain name: as before"
    )


def test_a_files_module_drops_the_extension_and_a_trailing_init() -> None:
    assert module_parts("pkg/mod.py") == ["pkg", "mod"]
    assert module_parts("pkg/mod/__init__.py") == ["pkg", "mod"]
    assert module_parts("Makefile") == ["Makefile"]
    assert module_parts(".hidden") == [".hidden"]
    assert module_parts("src/a.b.ts") == ["src", "a.b"]
