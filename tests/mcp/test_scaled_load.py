"""The scaled corpus (the standard library five times) loaded over Streamable HTTP by a
client whose reads time out after 5 s, searching it while it loads, with fresh clients
shaking hands meanwhile: the run of ``benchmarks/handshake_bench.py``, held to its bars.
Slow (about a minute), so out of the default run: ``pytest -m slow tests/mcp``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.handshake_bench import build_corpus, measure

pytestmark = pytest.mark.slow


async def test_a_5s_timeout_client_loads_and_searches_the_scaled_corpus(tmp_path: Path) -> None:
    root, files, _size = build_corpus(tmp_path, copies=5)
    assert files > 1000
    figures = await measure(root, tmp_path, interval=0.2)  # a timeout of that client raises
    assert figures.load_returned_s < 5 and figures.load_status in {"loading", "ready"}
    assert figures.searches and figures.found == len(figures.searches)
    busy = sorted(figures.busy)
    assert busy[min(len(busy) - 1, round(0.99 * (len(busy) - 1)))] < 1.0, busy
