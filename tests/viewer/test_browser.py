"""The page in a real headless Chromium: the tree and totals render, #expand opens every node,
the screenshot is not blank, and injected text runs nothing."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from rlm_mcp.viewer import render_html
from tests.viewer.events import EVIL, sample_events

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"
)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"},
    )


def _opened(dom: str) -> int:
    """``<details>`` elements with the ``open`` attribute, wherever the browser put it."""
    return len(re.findall(r"<details\b[^>]*\sopen\b", dom))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the raw rows of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            add = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            line[i] = (line[i] + add) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_the_png_decoder_reads_a_png_it_wrote() -> None:
    rows = [
        b"\x01" + bytes([x * 10, y * 10, 0]) * 1 + bytes([5, 5, 5]) for y in range(3) for x in [1]
    ]
    body = zlib.compress(b"".join(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 3, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", body)
        + chunk(b"IEND", b"")
    )
    width, height, out = decode_png(png)
    assert (width, height) == (2, 3)
    assert out[2] == bytes([10, 20, 0, 15, 25, 5])  # Sub filter: the second pixel adds the first


def test_chromium_renders_the_tree_totals_and_expands_every_node(tmp_path: Path) -> None:
    page = tmp_path / "trace.html"
    page.write_text(render_html(sample_events(evil=EVIL), title="trace.jsonl"), encoding="utf-8")
    url = page.as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url + "#expand")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "rlm_query · depth 1" in html and "query · depth 0" in html
    assert "4 LLM calls · 3,145 tokens · $0.0123" in html
    assert "guardrail: max_iterations" in html and "not verified" in html
    assert html.count("<details") > 10
    assert _opened(html) == html.count("<details"), "#expand opens every node"
    assert "NESTED-REPLY" in html
    assert "<script>alert" not in html and html.count("<script>") == 1

    folded = _chromium(tmp_path, "--dump-dom", url)
    assert folded.returncode == 0, folded.stderr[-2000:]
    assert 0 < _opened(folded.stdout) < folded.stdout.count("<details")

    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", url + "#expand")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 900)
    bpp = len(rows[0]) // width
    pixels = [row[i : i + 3] for row in rows[::4] for i in range(0, len(row), bpp * 4)]
    assert len(set(pixels)) > 20, "the screenshot has text and colours, it is not blank"
    background = max(set(pixels), key=pixels.count)
    assert background == b"\xff\xff\xff", (
        "the page's white background, decoded through every filter"
    )
    inked = sum(p != background for p in pixels) / len(pixels)
    assert 0.02 < inked < 0.9, inked
