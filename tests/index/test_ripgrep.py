"""Grep without a literal: ripgrep picks candidate files, and grep still finds exactly what a scan finds."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Repository, load
from rlm_mcp.index.search import ripgrep
from rlm_mcp.index.search.ripgrep import relax
from tests.index.index_helpers import WORDS, scan

pytestmark = pytest.mark.skipif(ripgrep.ripgrep() is None, reason="ripgrep is not installed")

# Planes 0 and 1: every cased letter, digit and space outside them is a CJK or private-use letter.
CODE_POINTS = [c for c in range(0x20000) if c != 10 and not 0xD800 <= c < 0xE000]

# Single characters, classes and categories, with and without IGNORECASE.
UNITS = [
    r"\w", r"\W", r"\d", r"\D", r"\s", r"\S", ".", "[^a]", "[^\\n]", r"[\w.-]", r"[^\s]",
    "k", "s", "i", "ß", "σ", "\u0130", "\u212a", "ǅ", "[a-z]", "[K-S]", "[^k]", "[ſ-ʒ]",
    r"[\d_]", "\U00010400", "[\U00010400-\U0001044f]", "[^\U00010428]",
]  # fmt: skip


@pytest.fixture(scope="module")
def code_point_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cp") / "points.txt"
    path.write_text("\n".join(chr(c) for c in CODE_POINTS) + "\n", encoding="utf-8")
    return path


def _rg_lines(path: Path, regex: str) -> set[int]:
    rg = ripgrep.ripgrep()
    assert rg is not None
    out = subprocess.run(
        [
            rg,
            "--no-config",
            "--text",
            "--encoding",
            "none",
            "-n",
            "--no-filename",
            "-e",
            regex,
            str(path),
        ],
        capture_output=True,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    return {int(line.split(b":", 1)[0]) for line in out.stdout.splitlines()}


@pytest.mark.parametrize("flags", [0, re.IGNORECASE], ids=["case", "icase"])
def test_each_translated_character_class_matches_every_code_point_python_does(
    code_point_file: Path, flags: int
) -> None:
    text = code_point_file.read_text(encoding="utf-8")
    for unit in UNITS:
        relaxed = relax(unit, re.MULTILINE | flags)
        assert relaxed is not None, unit
        rx = re.compile(f"^(?:{unit})$", re.MULTILINE | flags)
        python = {ord(m.group()) for m in rx.finditer(text)}
        rg = {CODE_POINTS[n - 1] for n in _rg_lines(code_point_file, relaxed)}
        missed = sorted(python - rg)
        assert not missed, (unit, flags, [hex(c) for c in missed[:10]])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\b\d{4}-\d\d-\d\d\b", r"(?:[\d]){4}\x{2d}[\d][\d]\x{2d}[\d][\d]"),
        ('[^"]*x', "x"),  # only the part between optional ends decides a file
        (r"x*", None),  # matches in every file
        (r"^$", None),
        (r"(a)\1", None),  # backreferences are left to re
        (r"(?s)a.b", "a.b"),  # a hit is a match within one line
        ("a\nb", None),  # never within one line: re decides
        ("[\n-]x", r"[\x{2d}]x"),
        (r"[^\s]\W", r"[\S]."),
    ],
)
def test_relax_examples(pattern: str, expected: str | None) -> None:
    assert relax(pattern, re.MULTILINE) == expected


TRICKY = [
    "\u212aelvin", "ſtrange", "ı", "İ", "ß", "ẞ", "σ", "ς", "Σ", "٣٤", "Ⅻ", "\x1c", "\x85",
    "\xa0", "e\u0301", "\ufeff", "a\r", "\t", "日本語", "2024-01-31", "ABCDEF_GHIJKL", "a\x00b",
]  # fmt: skip


ATOMS = [
    r"\w", r"\W", r"\d", r"\D", r"\s", r"\S", ".", "[^a]", "[a-z]", "[A-Z]", r"[\s\S]",
    "[^\n]", "k", "s", "ß", "σ", "ı", "-", "_", "=", r"\.", "20", "(?:ab|c)",
]  # fmt: skip


def _pattern(rng: random.Random, depth: int = 0) -> str:
    """A random regex without a literal of three characters: the ripgrep path.

    Only single atoms are repeated, so no pattern backtracks exponentially.
    """
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.35 or depth > 2:
            parts.append(rng.choice(ATOMS))
        elif kind < 0.5:
            alts = [_pattern(rng, depth + 1) for _ in range(rng.randint(2, 3))]
            parts.append("(?:" + "|".join(alts) + ")")
        elif kind < 0.7:
            parts.append(rng.choice(ATOMS) + rng.choice(["?", "*", "+", "{2}", "+?", "{1,3}"]))
        elif kind < 0.8:
            parts.append(
                rng.choice(
                    ["^", "$", r"\b", r"\B", r"(?=\w)", r"(?<!\d)", r"\A", r"(?!\n)", r"(?=\s)"]
                )
            )
        elif kind < 0.9:
            parts.append(rng.choice(["(?i:", "(?s:", "(?-i:"]) + _pattern(rng, depth + 1) + ")")
        else:
            parts.append(rng.choice(WORDS + TRICKY)[:2])
    return "".join(parts)


def _text(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 10)):
        lines.append(" ".join(rng.choice(WORDS + TRICKY) for _ in range(rng.randint(0, 5))))
    return rng.choice(["", "\ufeff"]) + rng.choice(["\n", "\r\n"]).join(lines)


def test_grep_through_ripgrep_returns_exactly_what_a_scan_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    root = tmp_path / "repo"
    root.mkdir()
    texts: dict[str, str] = {}
    for i in range(120):
        t = _text(rng)
        p = f"d{i % 5}/m{i:03}.py"
        (root / p).parent.mkdir(exist_ok=True)
        (root / p).write_bytes(t.encode("utf-8"))
        texts[p] = t
    (root / "bad.py").write_bytes(b"caf\xe9 2024-01-31\n")  # invalid UTF-8: always a candidate
    monkeypatch.setattr(ripgrep, "MIN_BYTES", 0)
    calls: list[int] = []
    real = ripgrep.candidates

    def counted(*args: object, **kwargs: object) -> object:
        got = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(got is not None and any(v is not None for v in got.values()))
        return got

    monkeypatch.setattr(ripgrep, "candidates", counted)
    with load(root, IndexSettings(cache_dir=tmp_path / "cache")) as repo:
        texts = {p: repo.text(p) for p in repo.entries()}
        assert "bad.py" in texts
        checked = 0
        for _ in range(200):
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
            assert got == scan(texts, rx), (pattern, ignore_case)
            checked += 1
        assert checked > 150
        assert sum(calls) > 100, "ripgrep should have picked files and lines for most patterns"


def _repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Repository:
    """A repository of ``files`` at ``tmp_path/repo``, loaded with ripgrep on at any size."""
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    monkeypatch.setattr(ripgrep, "MIN_BYTES", 0)
    return load(root, IndexSettings(cache_dir=tmp_path / "cache"))


def _hits(repo: Repository, pattern: str) -> list[tuple[str, int]]:
    return [(h.path, h.line) for h in repo.grep(pattern)]


def test_without_ripgrep_grep_scans_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ripgrep, "ripgrep", lambda: None)
    with _repo(tmp_path, monkeypatch, {"a.py": "when = '2024-01-31'\n", "b.py": "x = 1\n"}) as repo:
        assert _hits(repo, r"\d{4}-\d\d-\d\d") == [("a.py", 1)]


def test_hits_are_the_index_texts_even_when_the_tree_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ripgrep reads the working tree, which may be ahead of the index (watcher lag) or another
    # checkout (a replica of a shared index): files that differ are checked whole.
    files = {"a.py": "when = '2024-01-31'\n", "b.py": "nothing = 1\n"}
    with _repo(tmp_path, monkeypatch, files) as repo:
        root = repo.root
        assert _hits(repo, r"\d{4}-\d\d-\d\d") == [("a.py", 1)]
        (root / "a.py").write_text("no date here\n")
        (root / "b.py").write_text("when = '2024-01-31'\n")
        assert _hits(repo, r"\d{4}-\d\d-\d\d") == [("a.py", 1)]
        (root / "a.py").unlink()
        assert _hits(repo, r"\d{4}-\d\d-\d\d") == [("a.py", 1)]
        repo.refresh()  # the index catches up
        assert _hits(repo, r"\d{4}-\d\d-\d\d") == [("b.py", 1)]


def test_ripgrep_line_numbers_are_used_only_while_the_file_is_as_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _repo(tmp_path, monkeypatch, {"a.py": "x\n2024-01-31\n"}) as repo:
        paths, hints = repo.searcher._grep.ripgrep_candidates(r"\d{4}-\d\d", re.MULTILINE, ["a.py"])
        assert paths == ["a.py"] and hints is not None and list(hints["a.py"]) == [2]
        assert [h.line for h in repo.grep(r"\d{4}-\d\d")] == [2]
        # Same size, lines swapped, not re-indexed: ripgrep's line 1 is not the index's.
        (repo.root / "a.py").write_text("2024-01-31\nx\n")
        paths, hints = repo.searcher._grep.ripgrep_candidates(r"\d{4}-\d\d", re.MULTILINE, ["a.py"])
        assert paths == ["a.py"] and hints == {}
        assert [h.line for h in repo.grep(r"\d{4}-\d\d")] == [2]


def test_a_file_whose_name_ripgrep_output_cannot_carry_is_scanned_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ripgrep's line output is split on newlines: a newline in a file name breaks it.
    files = {"a.py": "when = '2024-02-29'\nx = 1\n", "odd\nname.py": "x = 1\nwhen = '2024-01-31'\n"}
    with _repo(tmp_path, monkeypatch, files) as repo:
        names = sorted(repo.entries())
        assert names == ["a.py", "odd\\x0aname.py"]  # the index escapes a newline (names.py)
        paths, hints = repo.searcher._grep.ripgrep_candidates(r"\d{4}-\d\d", re.MULTILINE, names)
        assert paths == names
        assert hints is not None and list(hints) == ["a.py"] and list(hints["a.py"]) == [1]
        assert _hits(repo, r"\d{4}-\d\d") == [("a.py", 1), ("odd\\x0aname.py", 2)]
