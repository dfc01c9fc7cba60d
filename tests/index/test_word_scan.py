"""``scan_words``, the ranked grep's per-file test, against the regex reference it replaces."""

from __future__ import annotations

import random

from rlm_mcp.index.search.fused import _best_line, _word_start, scan_words

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
