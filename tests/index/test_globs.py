"""One glob matcher with ripgrep's rules: braces, negation, precedence, file types."""

from __future__ import annotations

import re

import pytest

from rlm_mcp.errors import SearchError
from rlm_mcp.index.search.globs import (
    FILE_TYPES,
    PathFilter,
    expand_braces,
    glob_regex,
    paths_matching,
)

PATHS = [
    "setup.py",
    "pkg/mod.py",
    "pkg/mod.pyi",
    "pkg/data.json",
    "tests/test_mod.py",
    "tests/fixtures/deep/case.py",
    "docs/index.md",
    "src/lib.rs",
]


def test_a_glob_without_a_slash_matches_at_any_depth_and_one_with_a_slash_from_the_root() -> None:
    assert paths_matching(PATHS, "*.py") == [
        "setup.py",
        "pkg/mod.py",
        "tests/test_mod.py",
        "tests/fixtures/deep/case.py",
    ]
    assert paths_matching(PATHS, "pkg/*.py") == ["pkg/mod.py"]
    assert paths_matching(PATHS, "tests") == [
        "tests/test_mod.py",
        "tests/fixtures/deep/case.py",
    ], "a directory matches the files below it"
    assert paths_matching(PATHS, "**") == PATHS


def test_braces_expand_and_nest() -> None:
    assert expand_braces("*.{py,pyi}") == ["*.py", "*.pyi"]
    assert expand_braces("{a,b{c,d}}x") == ["ax", "bcx", "bdx"]
    assert expand_braces("no{brace") == ["no{brace"]
    assert paths_matching(PATHS, "pkg/*.{py,pyi}") == ["pkg/mod.py", "pkg/mod.pyi"]
    assert paths_matching(PATHS, "*.{md,rs}") == ["docs/index.md", "src/lib.rs"]


def test_a_negated_glob_alone_excludes_and_keeps_everything_else() -> None:
    assert paths_matching(PATHS, "!tests/**") == [p for p in PATHS if not p.startswith("tests/")]
    assert paths_matching(PATHS, ["!*.py", "!*.json"]) == [
        "pkg/mod.pyi",
        "docs/index.md",
        "src/lib.rs",
    ]


def test_later_globs_override_earlier_ones() -> None:
    assert paths_matching(PATHS, ["*.py", "!tests/**"]) == ["setup.py", "pkg/mod.py"]
    # A later positive glob re-includes what an earlier negation excluded.
    assert paths_matching(PATHS, ["*.py", "!tests/**", "tests/fixtures/**"]) == [
        "setup.py",
        "pkg/mod.py",
        "tests/fixtures/deep/case.py",
    ]
    # A negation before the positive glob that matches does not exclude.
    assert paths_matching(PATHS, ["!tests/**", "*.py"]) == [
        "setup.py",
        "pkg/mod.py",
        "tests/test_mod.py",
        "tests/fixtures/deep/case.py",
    ]


def test_a_second_glob_adds_to_the_first() -> None:
    assert paths_matching(PATHS, ["*.md", "*.rs"]) == ["docs/index.md", "src/lib.rs"]


def test_file_types_narrow_the_globs() -> None:
    assert "*.py" in FILE_TYPES["py"] and "*.rs" in FILE_TYPES["rust"]
    assert {"js", "ts", "go", "c", "cpp", "java", "md", "json", "yaml", "toml"} <= FILE_TYPES.keys()
    assert paths_matching(PATHS, PathFilter((), ("py",))) == [
        "setup.py",
        "pkg/mod.py",
        "pkg/mod.pyi",
        "tests/test_mod.py",
        "tests/fixtures/deep/case.py",
    ]
    assert paths_matching(PATHS, PathFilter(("!tests/**",), ("py", "md"))) == [
        "setup.py",
        "pkg/mod.py",
        "pkg/mod.pyi",
        "docs/index.md",
    ]
    with pytest.raises(SearchError, match="unknown file type 'nope'"):
        glob_regex(PathFilter((), ("nope",)))


def test_the_regex_carries_its_flags_so_a_store_can_compile_it_again() -> None:
    rx = glob_regex(["*.py", "!tests/**"])
    again = re.compile(rx.pattern)
    assert [p for p in PATHS if again.match(p)] == paths_matching(PATHS, ["*.py", "!tests/**"])
    assert again.match("odd\nname.py"), "a newline in a name is just a character"


def test_only_regexes_without_nested_repeats_count_as_safe_to_run_outside_the_helper() -> None:
    from rlm_mcp.index.search.literals import backtracks_linearly

    for safe in (r"def \w+", r"\b\d{4}-\d\d-\d\d\b", "foo|bar", r"(?<!\w)(?:x)(?!\w)", "(?:ab)+"):
        assert backtracks_linearly(safe), safe
    for unsafe in ("(a+)+$", "(a|aa)*b", r"(\w+)\1", "(?:x*)*", "(unclosed"):
        assert not backtracks_linearly(unsafe), unsafe
