"""Any name the file system holds indexes, searches and reads back, in every store.

A name that is not valid UTF-8 (a latin-1 ``caf\\xe9.py``), one with a newline,
one that already reads like an escape, a 255-byte component and a deep path:
the index spells each as :mod:`rlm_mcp.index.discover.names` says, and every
spelling a caller may hold (the shown one, the OS one, the shown one pasted
into a Python string literal) finds the file.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.errors import SearchError
from rlm_mcp.index import Repository, load
from rlm_mcp.index.discover.names import escape, is_raw, needs_escape, unescape
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.sqlite import SQLiteStore
from tests.index.index_helpers import git
from tests.pg_cluster import postgres_store

LONG = "a" * 252 + ".py"  # 255 bytes, the longest component Linux allows
LONG_UTF8 = "é" * 126 + ".py"  # 255 bytes too
DEEP = "/".join(f"level{i:02}_" + "d" * 90 for i in range(24)) + "/deep.py"

# OS name (as os.fsdecode gives it) -> the index's spelling
NAMES = {
    "caf\udce9.py": "caf\\xe9.py",
    "d\udcff/inner.py": "d\\xff/inner.py",
    "new\nline.py": "new\\x0aline.py",
    "tab\there.py": "tab\\x09here.py",
    "a\\x41.py": "a\\x5cx41.py",
    "back\\slash.py": "back\\slash.py",
    "café.py": "café.py",
    LONG: LONG,
    LONG_UTF8: LONG_UTF8,
    DEEP: DEEP,
}


def _body(i: int) -> str:
    return f"def func_{i}():\n    return 'marker {i}'\n"


def _tree(root: Path) -> Path:
    for i, name in enumerate(NAMES):
        path = os.path.join(os.fsencode(root), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(_body(i))
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], IndexStore]]:
    def make() -> IndexStore:
        if request.param == "sqlite":
            return SQLiteStore(tmp_path / "i.sqlite")
        return postgres_store(tmp_path)

    yield make


@pytest.fixture(params=["walk", "git"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = _tree(tmp_path / "repo")
    if request.param == "git":
        git(root, "init", "-q")
        git(root, "add", "-A")
    return root


def _load(root: Path, settings: IndexSettings, make: Callable[[], IndexStore]) -> Repository:
    return load(root, settings, store=make())


def test_every_name_is_indexed_in_its_escaped_spelling_and_its_text_reads_back(
    tree: Path, settings: IndexSettings, store_factory: Callable[[], IndexStore]
) -> None:
    repo = _load(tree, settings, store_factory)
    try:
        files = repo.files()
        assert sorted(files) == sorted(NAMES.values())
        assert not [p for p in files if is_raw(p)]
        for i, (os_name, shown) in enumerate(NAMES.items()):
            assert repo.text(shown) == _body(i)
            assert repo.text(os_name) == _body(i), "the OS name finds the file"
            assert repo.text(str(tree / os_name)) == _body(i), "so does the absolute path"
            assert [d.path for d in repo.symbols(f"func_{i}", match="exact")] == [shown]
            assert repo.outline(shown)[0].name == f"func_{i}"
        hits = {h.path for h in repo.grep("marker")}
        assert hits == set(NAMES.values())
    finally:
        repo.close()


def test_the_shown_name_pasted_into_a_python_literal_finds_the_file(
    tmp_path: Path, settings: IndexSettings
) -> None:
    root = _tree(tmp_path / "repo")
    repo = load(root, settings)
    try:
        # "caf\xe9.py" in Python source reads as café (U+00E9); café.py itself also exists
        # (as UTF-8), so only a name with no such twin falls back to the byte.
        assert repo.text("d\xff/inner.py") == _body(1)
        assert repo.text("new\x0aline.py") == _body(2)
        assert repo.text("café.py") == _body(6), "a name that exists is that file"
    finally:
        repo.close()


def test_a_warm_load_reuses_every_stored_name_and_an_edit_reaches_the_right_row(
    tree: Path, settings: IndexSettings, store_factory: Callable[[], IndexStore]
) -> None:
    _load(tree, settings, store_factory).close()
    repo = _load(tree, settings, store_factory)
    try:
        assert repo.report.parsed == 0 and repo.report.reused == len(NAMES)
        target = tree / "caf\udce9.py"
        target.write_text("def edited():\n    pass\n")
        repo.apply_changes({"caf\udce9.py"}, set())  # a watcher reports OS names
        assert [d.path for d in repo.symbols("edited", match="exact")] == ["caf\\xe9.py"]
        assert sorted(repo.files()) == sorted(NAMES.values())
        target.unlink()
        repo.apply_changes(set(), {"caf\udce9.py"})
        assert "caf\\xe9.py" not in repo.files()
    finally:
        repo.close()


def test_a_new_directory_with_a_latin1_name_found_by_a_watcher_batch_is_indexed(
    tmp_path: Path, settings: IndexSettings
) -> None:
    root = _tree(tmp_path / "repo")
    repo = load(root, settings)
    try:
        new = os.path.join(os.fsencode(root), b"n\xe4u")
        os.makedirs(new)
        with open(os.path.join(new, b"x\xe9.py"), "w", encoding="utf-8") as fh:
            fh.write("def fresh():\n    pass\n")
        repo.apply_changes({"n\udce4u"}, set())
        assert [d.path for d in repo.symbols("fresh", match="exact")] == ["n\\xe4u/x\\xe9.py"]
    finally:
        repo.close()


def test_an_unknown_name_is_reported_in_its_shown_spelling(
    tmp_path: Path, settings: IndexSettings
) -> None:
    repo = load(_tree(tmp_path / "repo"), settings)
    try:
        with pytest.raises(SearchError, match=r"unknown path: 'nope\\xe9\.py'"):
            repo.text("nope\udce9.py")
    finally:
        repo.close()


# -- the escape itself -----------------------------------------------------------------


def test_the_escape_is_the_identity_on_plain_names_and_reversible_on_every_name() -> None:
    assert escape("src/pkg/mod.py") == "src/pkg/mod.py"
    assert escape("café/naïve.py") == "café/naïve.py"
    for os_name, shown in NAMES.items():
        assert escape(os_name) == shown
        assert unescape(shown) == os_name
        shown.encode("utf-8")  # never a lone surrogate
    rng = random.Random(21)
    alphabet = ["a", "x", "5", "c", "F", "\\", "/", "\n", "\x7f", "é", "\udce9", "\udc80"]
    for _ in range(20_000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        shown = escape(name)
        assert unescape(shown) == name
        assert not is_raw(shown)
        assert needs_escape(name) == (shown != name)


def test_the_escape_works_component_by_component() -> None:
    rng = random.Random(7)
    alphabet = ["a", "x", "4", "\\", "\udcff", "\n"]
    for _ in range(5_000):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        assert escape(f"{a}/{b}") == f"{escape(a)}/{escape(b)}"
