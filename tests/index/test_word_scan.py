"""``scan_words``, the ranked grep's per-file test, against the regex reference it replaces."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import load
from rlm_mcp.index.search import fused
from rlm_mcp.index.search.fused import _best_line, _word_start, scan_words, word_grep

WORDS = ["live", "load", "config", "http", "parse", "ab"]
PIECES = [
    "live",
    "Live",
    "LIVE",
    "alive",
    "isLive",
    "is_live",
    "load",
    "reload",
    "loadConfig",
    "CONFIG",
    "config_x",
    "HTTPParse",
    "httpParse",
    "parse2",
    "2parse",
    "ab",
    "aab",
    "Ab",
    " ",
    " ",
    "\n",
    "\n",
    "\r\n",
    "(",
    ".",
    "_",
    "x",
    "9",
    "é",
    "İ",
    "\x0c",
    "\r",
    "\u2028",
]


def _reference(text: str, words: list[str]) -> tuple[list[str], int, int]:
    rxs = {w: _word_start(w) for w in words}
    present = [w for w in words if w in text.lower() and rxs[w].search(text)]
    if not present:
        return [], 1, 0
    return (present, *_best_line(text, present, rxs))


def test_scan_words_agrees_with_the_regexes_on_random_texts() -> None:
    rng = random.Random(7)
    rxs = {w: _word_start(w) for w in WORDS}
    fast = 0
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        words = rng.sample(WORDS, rng.randint(1, len(WORDS)))
        assert scan_words(text, words, rxs) == _reference(text, words), repr((text, words))
        fast += not any(c in text for c in "İ\x0c\r\u2028")
    assert fast > 300  # the str.find path, not only the fallback, was compared


def test_scan_words_examples() -> None:
    rxs = {w: _word_start(w) for w in ("live", "load")}
    text = "alive = 1\nisLive(load)\nx.live\n"
    assert scan_words(text, ["live", "load"], rxs) == (["live", "load"], 2, 2)
    assert scan_words("alive\nreload\n", ["live", "load"], rxs) == ([], 1, 0)


@pytest.mark.parametrize("common_files", [2000, 0])
def test_the_ranked_grep_stops_reading_early_with_the_same_top_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, common_files: int
) -> None:
    """Reading stops once no unread file can enter the top ``k``; the top is the one a
    full read gives, on random trees and word sets (ties on words, lines and paths), also
    when words in over half the files are left out of the counts (``common_files=0``)."""
    monkeypatch.setattr(fused, "COMMON_FILES", common_files)
    rng = random.Random(11)
    vocab = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    root = tmp_path / "repo"
    for i in range(120):
        lines = [" ".join(rng.sample(vocab, rng.randint(0, 3))) for _ in range(rng.randint(1, 6))]
        path = root / f"d{i % 7}" / f"f{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    with load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        store = repo.store
        reads: list[str] = []
        real_text = store.text

        def counted(path: str) -> str | None:
            reads.append(path)
            return real_text(path)

        store.text = counted  # type: ignore[method-assign]
        fewer = 0
        for _ in range(40):
            words = rng.sample(vocab, rng.randint(1, 4))
            k = rng.choice([1, 3, 10])
            reads.clear()
            full = word_grep(store, words, 10_000)
            everything = len(reads)
            reads.clear()
            assert word_grep(store, words, k) == full[:k], words
            fewer += len(reads) < everything
    assert fewer >= 10 or common_files == 0  # the early stop happened, not only full reads


def test_a_word_left_out_of_the_counts_still_counts_in_the_early_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``omega`` is in every file, so it is left out of the counts; ``b.py`` holds both
    words on one line and must win although ``a.py`` comes first with the same count."""
    monkeypatch.setattr(fused, "COMMON_FILES", 0)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("alpha\nomega\n")
    (root / "b.py").write_text("alpha omega\n")
    for i in range(4):
        (root / f"z{i}.py").write_text("omega\n")
    with load(root, IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        top = word_grep(repo.store, ["alpha", "omega"], 1)
    assert [(g.path, g.words, g.on_line) for g in top] == [("b.py", 2, 2)]
