"""Symbol extraction with tree-sitter tags queries."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from tree_sitter import Query
from tree_sitter_language_pack import SupportedLanguage, get_language

from rlm_mcp.index.model import DEFINITION_KINDS, Definition
from rlm_mcp.index.parse.languages import TAGGED_LANGUAGES, has_tags, language_for_path
from rlm_mcp.index.parse.tags import extract_tags, load_query, query_languages

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "languages"

REQUIRED_LANGUAGES = {
    "python", "javascript", "typescript", "tsx", "java", "go", "rust", "c", "cpp",
    "csharp", "ruby", "php", "kotlin", "swift", "scala", "lua", "bash", "elixir",
    "haskell", "ocaml", "dart", "zig", "julia", "r", "solidity",
}  # fmt: skip

# language -> (expected definitions as (qualname, kind, start_line, end_line), a referenced name)
EXPECTED: dict[str, tuple[list[tuple[str, str, int, int]], str]] = {
    "python": (
        [("Inventory", "class", 6, 11), ("Inventory.add", "method", 9, 11),
         ("normalise", "function", 15, 16), ("MAX_ITEMS", "constant", 3, 3)],
        "normalise",
    ),
    "javascript": (
        [("Inventory", "class", 2, 7), ("Inventory.add", "method", 4, 6),
         ("normalise", "function", 10, 12), ("double", "function", 14, 14)],
        "normalise",
    ),
    "typescript": (
        [("Named", "interface", 2, 4), ("Id", "type", 6, 6), ("Color", "enum", 8, 8),
         ("Inventory", "class", 11, 17), ("Inventory.add", "method", 14, 16),
         ("normalise", "function", 20, 22)],
        "normalise",
    ),
    "tsx": (
        [("Props", "interface", 1, 3), ("Header", "class", 6, 10),
         ("Header.render", "method", 7, 9), ("format", "function", 13, 15)],
        "Header",
    ),
    "java": (
        [("Named", "interface", 4, 6), ("Inventory", "class", 9, 18),
         ("Inventory.add", "method", 13, 15), ("Inventory.count", "field", 10, 10),
         ("Color", "enum", 20, 20)],
        "normalise",
    ),
    "go": (
        [("Inventory", "struct", 6, 8), ("Named", "interface", 11, 13),
         ("Inventory.Add", "method", 16, 18), ("Normalise", "function", 21, 23),
         ("MaxItems", "constant", 25, 25)],
        "Normalise",
    ),
    "rust": (
        [("Inventory", "struct", 3, 5), ("Named", "trait", 8, 10),
         ("Inventory.add", "method", 14, 16), ("Color", "enum", 19, 19),
         ("normalise", "function", 22, 24), ("square", "macro", 26, 26)],
        "normalise",
    ),
    "c": (
        [("inventory", "struct", 6, 8), ("inventory_add", "function", 13, 15),
         ("normalise", "function", 18, 20), ("MAX_ITEMS", "macro", 3, 3),
         ("inventory_t", "type", 10, 10)],
        "strlen",
    ),
    "cpp": (
        [("shop", "module", 3, 24), ("shop.Inventory", "class", 6, 13),
         ("shop.Inventory.add", "method", 9, 11), ("shop.Inventory.size", "method", 15, 15),
         ("shop.Point", "struct", 17, 17), ("shop.normalise", "function", 20, 22)],
        "normalise",
    ),
    "csharp": (
        [("Shop.INamed", "interface", 4, 4), ("Shop.Inventory", "class", 7, 18),
         ("Shop.Inventory.Add", "method", 12, 15), ("Shop.Point", "struct", 20, 20),
         ("Shop.Color", "enum", 22, 22)],
        "Normalise",
    ),
    "ruby": (
        [("Shop", "module", 2, 14), ("Shop.Inventory", "class", 4, 13),
         ("Shop.Inventory.add", "method", 6, 8), ("normalise", "function", 17, 19)],
        "normalise",
    ),
    "php": (
        [("Named", "interface", 6, 8), ("Inventory", "class", 11, 19),
         ("Inventory.add", "method", 13, 16), ("normalise", "function", 22, 24)],
        "normalise",
    ),
    "kotlin": (
        [("Named", "interface", 4, 6), ("Inventory", "class", 9, 16),
         ("Inventory.add", "method", 11, 13), ("Registry", "class", 18, 18),
         ("normalise", "function", 21, 23)],
        "normalise",
    ),
    "swift": (
        [("Named", "interface", 2, 4), ("Inventory", "class", 7, 16),
         ("Inventory.add", "method", 11, 13), ("Point", "struct", 18, 18),
         ("normalise", "function", 21, 23)],
        "normalise",
    ),
    "scala": (
        [("Named", "trait", 4, 6), ("Inventory", "class", 9, 16),
         ("Inventory.add", "method", 11, 13), ("Util.normalise", "method", 20, 20)],
        "normalise",
    ),
    "lua": (
        [("Inventory.add", "method", 5, 7), ("normalise", "function", 10, 12),
         ("M.helper", "function", 14, 16)],
        "normalise",
    ),
    "bash": (
        [("add_item", "function", 4, 6), ("normalise", "function", 9, 11)],
        "normalise",
    ),
    "elixir": (
        [("Shop.Inventory", "module", 1, 15), ("Shop.Inventory.add", "function", 5, 7),
         ("Shop.Inventory.normalise", "function", 10, 12),
         ("Shop.Inventory.debug", "macro", 14, 14)],
        "normalise",
    ),
    "haskell": (
        [("Inventory", "type", 4, 4), ("Named", "class", 7, 8), ("Named.name", "method", 8, 8),
         ("add", "function", 13, 13), ("normalise", "function", 17, 17)],
        "normalise",
    ),
    "ocaml": (
        [("inventory", "type", 2, 2), ("normalise", "function", 5, 5), ("add", "function", 8, 8),
         ("Shop", "module", 10, 12), ("counter", "class", 14, 16),
         ("counter.incr", "method", 15, 15)],
        "normalise",
    ),
    "dart": (
        [("Inventory", "class", 2, 9), ("Inventory.add", "method", 6, 6),
         ("Color", "enum", 11, 11), ("normalise", "function", 14, 14)],
        "normalise",
    ),
    "zig": (
        [("Inventory", "struct", 4, 11), ("Inventory.add", "method", 8, 10),
         ("normalise", "function", 14, 16)],
        "normalise",
    ),
    "julia": (
        [("Shop", "module", 2, 19), ("Shop.Inventory", "struct", 5, 7),
         ("Shop.add!", "function", 10, 12), ("Shop.normalise", "function", 15, 15)],
        "normalise",
    ),
    "r": (
        [("normalise", "function", 2, 4), ("add_item", "function", 7, 9),
         ("Inventory", "class", 11, 11)],
        "normalise",
    ),
    "solidity": (
        [("Named", "interface", 5, 7), ("Inventory", "class", 10, 24),
         ("Inventory.add", "method", 18, 21), ("Inventory.Item", "struct", 15, 15),
         ("Util", "class", 26, 28)],
        "normalise",
    ),
}  # fmt: skip


def _fixture(language: str) -> Path:
    (path,) = sorted((FIXTURES / language).iterdir())
    return path


def _tags_of(language: str) -> tuple[list[Definition], set[str], str]:
    path = _fixture(language)
    result = extract_tags(path.read_bytes(), path.name, language)
    return result.definitions, {r.name for r in result.references}, path.name


def _python(source: str) -> dict[str, Definition]:
    result = extract_tags(source.encode(), "m.py", "python")
    return {d.qualname: d for d in result.definitions}


def test_every_required_language_ships_a_tags_query() -> None:
    assert query_languages() >= REQUIRED_LANGUAGES
    assert query_languages() == TAGGED_LANGUAGES


@pytest.mark.parametrize("language", sorted(TAGGED_LANGUAGES))
def test_tags_query_compiles_against_the_bundled_grammar(language: str) -> None:
    query = load_query(language)
    assert isinstance(query, Query)
    assert query.pattern_count > 0
    for index in range(query.capture_count):
        name = query.capture_name(index)
        if name.startswith(("name.definition.", "definition.")):
            assert name.rsplit(".", 1)[1] in DEFINITION_KINDS, name


@pytest.mark.parametrize("language", sorted(EXPECTED))
def test_fixture_yields_expected_definitions_and_a_reference(language: str) -> None:
    expected, referenced = EXPECTED[language]
    definitions, references, path = _tags_of(language)
    got = {(d.qualname, d.kind, d.start_line, d.end_line) for d in definitions}
    missing = [e for e in expected if e not in got]
    assert not missing, f"missing {missing}; got {sorted(got)}"
    assert referenced in references
    for d in definitions:
        assert d.path == path
        assert d.kind in DEFINITION_KINDS
        assert d.qualname.endswith(d.name)
        assert d.signature


@pytest.mark.parametrize(
    ("language", "qualname", "doc"),
    [
        ("python", "Inventory.add", "Add one item."),
        ("python", "normalise", "Normalise an item name."),
        ("javascript", "Inventory", "Holds items by name."),
        ("go", "Inventory.Add", "Add adds one item."),
        ("rust", "Inventory", "Holds items by name."),
        ("csharp", "Shop.Inventory.Add", "Add one item."),
        ("c", "normalise", "Normalise an item name."),
        ("ruby", "Shop.Inventory.add", "Add one item."),
        ("haskell", "add", "Add one item."),
        ("ocaml", "normalise", "Normalise an item name."),
        ("lua", "normalise", "Normalise an item name."),
    ],
)
def test_doc_is_first_line_of_docstring_or_leading_comment(
    language: str, qualname: str, doc: str
) -> None:
    definitions, _, _ = _tags_of(language)
    by_qualname = {d.qualname: d for d in definitions}
    assert by_qualname[qualname].doc == doc


def test_go_method_gets_receiver_qualified_name_and_signature() -> None:
    definitions, _, _ = _tags_of("go")
    add = next(d for d in definitions if d.name == "Add")
    assert add.qualname == "Inventory.Add"
    assert add.signature == "func (inv *Inventory) Add(name string)"


def test_python_method_gets_class_qualified_name() -> None:
    defs = _python("class A:\n    def run(self):\n        pass\n")
    assert defs["A.run"].kind == "method"
    assert defs["A.run"].name == "run"


def test_python_nested_classes_and_functions_nest_qualnames() -> None:
    source = (
        "class Outer:\n"
        "    class Inner:\n"
        "        def method(self):\n"
        "            def helper():\n"
        "                pass\n"
    )
    defs = _python(source)
    assert defs["Outer.Inner"].kind == "class"
    assert defs["Outer.Inner.method"].kind == "method"
    assert defs["Outer.Inner.method.helper"].kind == "function"


def test_python_decorated_definition_starts_at_def_line() -> None:
    source = "import functools\n\n@functools.cache\n@other\ndef cached(x):\n    return x\n"
    result = extract_tags(source.encode(), "m.py", "python")
    (cached,) = [d for d in result.definitions if d.name == "cached"]
    assert (cached.start_line, cached.end_line) == (5, 6)
    assert {"cache", "other"} <= {r.name for r in result.references}


def test_python_async_def_is_a_function_with_async_signature() -> None:
    defs = _python("class C:\n    async def fetch(self, url):\n        await get(url)\n")
    assert defs["C.fetch"].kind == "method"
    assert defs["C.fetch"].signature == "async def fetch(self, url):"


def test_python_multiline_header_is_joined_into_signature() -> None:
    defs = _python("def f(\n    a: int,\n    b: str = 'x',\n) -> None:\n    pass\n")
    assert defs["f"].signature == "def f( a: int, b: str = 'x', ) -> None:"


def test_python_docstring_first_line_wins_over_comment() -> None:
    source = '# comment\ndef f():\n    """\n    Summary line.\n\n    More.\n    """\n'
    assert _python(source)["f"].doc == "Summary line."


def test_python_attribute_call_is_referenced_by_attribute_name() -> None:
    result = extract_tags(b"def f(obj):\n    obj.method(1)\n", "m.py", "python")
    assert [(r.name, r.line, r.kind) for r in result.references] == [("method", 2, "call")]


def test_definition_site_is_not_reported_as_a_reference() -> None:
    result = extract_tags(b"def f():\n    f()\n", "m.py", "python")
    assert [(r.name, r.line) for r in result.references] == [("f", 2)]


@pytest.mark.parametrize(
    "source",
    [
        b"\xff\xfe\x00garbage\x80\x81 def (((",
        b"def f(:\n  class\n\xc3\x28 \x00\x00",
        b"x = 1;" * 200_000,
        b"",
    ],
)
@pytest.mark.parametrize("language", ["python", "javascript", "c", "rust", "go"])
def test_garbage_input_does_not_raise(source: bytes, language: str) -> None:
    result = extract_tags(source, "bad", language)
    assert isinstance(result.definitions, list)


def test_invalid_utf8_name_is_decoded_with_replacement() -> None:
    result = extract_tags(b"def caf\xe9():\n    pass\n", "m.py", "python")
    assert all(isinstance(d.name, str) for d in result.definitions)


def test_language_without_query_yields_nothing() -> None:
    result = extract_tags(b"# Title\n", "README.md", "markdown")
    assert result.definitions == [] and result.references == []
    assert extract_tags(b"x", "x", "no-such-language").definitions == []


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b.py", "python"),
        ("x.pyi", "python"),
        ("x.mjs", "javascript"),
        ("x.cts", "typescript"),
        ("x.tsx", "tsx"),
        ("x.h", "c"),
        ("x.hpp", "cpp"),
        ("x.R", "r"),
        ("x.r", "r"),
        ("x.mli", "ocaml_interface"),
        ("x.kts", "kotlin"),
        ("Makefile", "make"),
        ("build/Dockerfile", "dockerfile"),
        ("README.md", "markdown"),
        ("data.yml", "yaml"),
        ("noext", None),
        (".hidden", None),
    ],
)
def test_language_for_path_uses_extension_and_well_known_names(
    path: str, language: str | None
) -> None:
    assert language_for_path(path) == language


def test_has_tags_only_for_languages_with_a_query() -> None:
    assert has_tags("python")
    assert not has_tags("markdown")
    assert not has_tags(None)


@pytest.mark.parametrize("language", sorted(TAGGED_LANGUAGES))
def test_tagged_language_is_known_to_the_language_pack(language: str) -> None:
    assert get_language(cast(SupportedLanguage, language)) is not None
