"""The trigram prefilter: grep visits only candidate files and finds exactly what a scan finds."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
from rlm_mcp.index.model import FileRow
from rlm_mcp.index.search.literals import FOLD_UNSAFE, literal_query
from rlm_mcp.index.store.sqlite import SQLiteStore
from tests.index.index_helpers import WORDS, scan


def _text(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 12)):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6))))
    return "\n".join(lines) + rng.choice(["", "\n"])


def _literal(rng: random.Random) -> str:
    w = rng.choice(WORDS)
    i = rng.randint(0, max(0, len(w) - 1))
    return w[i : i + rng.randint(1, 8)] or w


def _pattern(rng: random.Random, depth: int = 0) -> str:
    """A random regex built from pieces of the corpus' words."""
    parts = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        if kind < 0.45 or depth > 2:
            parts.append(re.escape(_literal(rng)))
        elif kind < 0.55:
            parts.append(rng.choice([".", r"\w+", r"\s", "[a-z]", "[^x]", r"\d{2}", ".*?"]))
        elif kind < 0.7:
            alts = [_pattern(rng, depth + 1) for _ in range(rng.randint(2, 3))]
            parts.append("(?:" + "|".join(alts) + ")")
        elif kind < 0.8:
            parts.append(
                "(" + _pattern(rng, depth + 1) + ")" + rng.choice(["?", "*", "+", "{2}", ""])
            )
        elif kind < 0.87:
            parts.append(rng.choice(["^", "$", r"\b"]))
        elif kind < 0.94:
            parts.append("(?i:" + _pattern(rng, depth + 1) + ")")
        else:
            parts.append(re.escape(_literal(rng)) + rng.choice(["?", "*", "+"]))
    return "".join(parts)


def _row(path: str, text: str) -> FileRow:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return FileRow(path, len(text), 1, digest, "python", text.count("\n"), 1, False)


def test_fold_unsafe_letters_are_exactly_those_re_equates_with_non_ascii() -> None:
    others = "".join(chr(i) for i in range(128, 0x30000) if not 0xD800 <= i < 0xE000)
    found = {
        c
        for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
        if re.search(f"[{c}]", others, re.IGNORECASE)
    }
    assert found == set(FOLD_UNSAFE)


@pytest.mark.parametrize(
    ("pattern", "flags", "expected"),
    [
        ("load_config", 0, [["load_config"]]),
        (r"def \w+_handler", 0, [["_handler", "def "]]),
        ("foo|bar", 0, [["foo"], ["bar"]]),
        ("(?:abc|de)fgh", 0, [["fgh"]]),
        ("(?:abc|de)fg", 0, None),
        ("ab", 0, None),
        ("x*yz", 0, None),
        ("(?i)parse", 0, [["par"]]),
        ("Kelvin", re.IGNORECASE, [["elv"]]),
        ("naïve_parser", 0, [["ve_parser"]]),
        ("(abc)+def", 0, [["abc", "def"]]),
        ("(abc)?def", 0, [["def"]]),
    ],
)
def test_literal_query_examples(pattern: str, flags: int, expected: list[list[str]] | None) -> None:
    assert literal_query(pattern, flags) == expected


def test_store_candidates_are_a_superset_of_the_matching_files(tmp_path: Path) -> None:
    rng = random.Random(1234)
    texts = {f"f{i:03}.py": _text(rng) for i in range(120)}
    store = SQLiteStore(tmp_path / "i.sqlite")
    try:
        with store.bulk_load(), store.batch() as w:
            for i, (p, t) in enumerate(texts.items()):
                if i % 2:
                    w.put_text(_row(p, t), t)
                else:
                    w.put_file(_row(p, t), t, [], [])
        assert store.grep_candidates([["load_config"]]) is None  # nothing indexed yet
        assert store.text_index_progress() == (0, len(texts))
        store.index_texts(50)  # partly indexed: the rest are candidates for any pattern
        assert store.text_index_progress() == (50, len(texts))
        states = ["partial"]
        # Replace and delete some files while the index is partial, then finish it.
        with store.batch() as w:
            for p in list(texts)[::7]:
                texts[p] = _text(rng)
                w.put_file(_row(p, texts[p]), texts[p], [], [])
            for p in list(texts)[3::11]:
                w.delete_paths([p])
                del texts[p]
        for state in ("partial-edited", "complete", "complete-edited"):
            if state == "complete":
                while not store.index_texts(40):
                    pass
                assert store.text_index_progress() == (len(texts), len(texts))
            if state == "complete-edited":
                with store.batch() as w:
                    for p in list(texts)[1::5]:
                        texts[p] = _text(rng)
                        w.put_file(_row(p, texts[p]), texts[p], [], [])
            states.append(state)
            narrowed = 0
            for _ in range(150):
                pattern = _pattern(rng)
                flags = re.MULTILINE | (re.IGNORECASE if rng.random() < 0.3 else 0)
                try:
                    rx = re.compile(pattern, flags)
                except re.error:
                    continue
                alts = literal_query(pattern, flags)
                if alts is None:
                    continue
                got = store.grep_candidates(alts)
                assert got is not None
                want = {p for p, t in texts.items() if rx.search(t)}
                assert want <= got, (state, pattern, flags, sorted(want - got))
                narrowed += len(got) < len(texts)
            assert narrowed > 20, state
    finally:
        store.close()


def test_grep_with_the_prefilter_returns_exactly_what_a_scan_returns(tmp_path: Path) -> None:
    rng = random.Random(99)
    root = tmp_path / "repo"
    root.mkdir()
    texts: dict[str, str] = {}
    for i in range(260):  # past the bulk-load threshold: the cold path defers the index
        t = _text(rng)
        p = f"d{i % 7}/m{i:03}.py"
        (root / p).parent.mkdir(exist_ok=True)
        (root / p).write_text(t, encoding="utf-8")
        texts[p] = t
    settings = IndexSettings(cache_dir=tmp_path / "cache")
    with load(root, settings) as repo:
        assert repo.store.text_index_progress() == (len(texts), len(texts))
        entries = repo.entries()
        texts = {p: t for p, t in texts.items() if p in entries}
        checked = narrowed = 0
        for _ in range(250):
            pattern = _pattern(rng)
            ignore_case = rng.random() < 0.3
            try:
                rx = re.compile(pattern, re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
            except re.error:
                continue
            got = [
                (h.path, h.line)
                for h in repo.grep(pattern, max_results=10_000, ignore_case=ignore_case)
            ]
            assert got == scan(texts, rx), pattern
            checked += 1
            alts = literal_query(pattern, rx.flags)
            if alts is not None:
                cands = repo.store.grep_candidates(alts)
                narrowed += cands is not None and len(cands) < len(texts)
        assert checked > 150 and narrowed > 30


def test_texts_replaced_text_first_leave_garbage_until_the_index_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch switch skips deleting old trigram entries; past a share, the index starts over."""
    from rlm_mcp.index.store.sqlite import write as store_mod

    monkeypatch.setattr(store_mod, "TRI_GARBAGE_MIN", 10)
    texts = {f"f{i:02}.py": f"def old_name_{i}():\n    return {i}\n" for i in range(40)}
    store = SQLiteStore(tmp_path / "g.sqlite")
    try:
        with store.batch() as w:
            for p, t in texts.items():
                w.put_file(_row(p, t), t, [], [])
        assert store.text_index_progress() == (40, 40)
        # 8 replacements: garbage stays below the limit; candidates are still exact.
        with store.batch() as w:
            for i in range(8):
                p = f"f{i:02}.py"
                texts[p] = f"def new_name_{i}():\n    return {i}\n"
                w.put_text(_row(p, texts[p]), texts[p])
        assert store.text_index_progress() == (40, 40)
        assert store.grep_candidates([["old_name_3("]]) == set()
        assert store.grep_candidates([["new_name_3("]]) == {"f03.py"}
        assert store.grep_candidates([["old_name_30("]]) == {"f30.py"}
        # 8 more: past max(10, 30% of 40) the index starts over and is filled in steps.
        with store.batch() as w:
            for i in range(8, 16):
                p = f"f{i:02}.py"
                texts[p] = f"def new_name_{i}():\n    return {i}\n"
                w.put_text(_row(p, texts[p]), texts[p])
        assert store.text_index_progress() == (0, 40)
        assert store.grep_candidates([["new_name_12("]]) is None
        while not store.index_texts(15):
            pass
        for i in range(40):
            want = "new" if i < 16 else "old"
            assert store.grep_candidates([[f"{want}_name_{i}("]]) == {f"f{i:02}.py"}
            other = "old" if want == "new" else "new"
            assert store.grep_candidates([[f"{other}_name_{i}("]]) == set()
    finally:
        store.close()
