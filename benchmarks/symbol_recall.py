"""Recall of Python definitions against universal-ctags, plus tagging speed.

Usage: ``python benchmarks/symbol_recall.py [ROOT] [--misses N]``; ROOT
defaults to the running interpreter's standard library.

Both tools see the same file set: every ``*.py`` under ROOT outside
``site-packages``, handed to ctags with ``-L -``. ctags is asked for classes,
functions and members (``--kinds-Python=cfm``). A ctags tag counts as found
when ``extract_tags`` yields a definition with the same relative path, name
and start line. ctags reports the ``def``/``class`` line of a decorated
definition, and our definitions start at the ``function_definition`` /
``class_definition`` node (not the enclosing ``decorated_definition``), so
the lines agree without any fuzzing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlm_mcp.index.parse.tags import extract_tags

Key = tuple[str, str, int]


@dataclass
class RecallReport:
    expected: set[Key] = field(default_factory=set)
    found: set[Key] = field(default_factory=set)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    definitions: int = 0
    references: int = 0

    @property
    def matched(self) -> set[Key]:
        return self.expected & self.found

    @property
    def recall(self) -> float:
        return len(self.matched) / len(self.expected) if self.expected else 1.0


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def ctags_definitions(root: Path, paths: list[Path]) -> set[Key]:
    listing = "\n".join(str(p) for p in paths) + "\n"
    proc = subprocess.run(
        [
            "ctags",
            "--languages=Python",
            "--kinds-Python=cfm",
            "--fields=+nK",
            "--output-format=json",
            "-f",
            "-",
            "-L",
            "-",
        ],
        input=listing,
        capture_output=True,
        text=True,
        check=True,
    )
    keys: set[Key] = set()
    for line in proc.stdout.splitlines():
        tag = json.loads(line)
        if tag.get("_type") != "tag":
            continue
        rel = Path(tag["path"]).relative_to(root).as_posix()
        keys.add((rel, tag["name"], int(tag["line"])))
    return keys


def run(root: Path) -> RecallReport:
    root = root.resolve()
    paths = python_files(root)
    report = RecallReport(files=len(paths))
    report.expected = ctags_definitions(root, paths)
    sources = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in paths]
    report.bytes = sum(len(s) for _, s in sources)
    started = time.perf_counter()
    results = [(rel, extract_tags(src, rel, "python")) for rel, src in sources]
    report.seconds = time.perf_counter() - started
    for rel, res in results:
        report.definitions += len(res.definitions)
        report.references += len(res.references)
        for d in res.definitions:
            report.found.add((rel, d.name, d.start_line))
    return report


def python_recall(root: Path) -> tuple[float, int, int]:
    """(recall, matched, expected) of ``extract_tags`` against ctags under ``root``."""
    report = run(root)
    return report.recall, len(report.matched), len(report.expected)


def default_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=default_root())
    parser.add_argument("--misses", type=int, default=25, help="how many misses to list")
    args = parser.parse_args(argv)
    report = run(args.root)
    print(f"root:        {args.root}")
    print(f"files:       {report.files} ({report.bytes / 1e6:.1f} MB)")
    print(f"tag time:    {report.seconds:.2f} s (parse + extract, single thread)")
    print(f"definitions: {report.definitions}, references: {report.references}")
    print(
        f"recall:      {report.recall:.4%} "
        f"({len(report.matched)} of {len(report.expected)} ctags tags)"
    )
    misses = sorted(report.expected - report.found)
    for rel, name, line in misses[: args.misses]:
        print(f"  miss {rel}:{line} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
