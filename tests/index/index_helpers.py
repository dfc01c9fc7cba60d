"""Helpers shared by the index and watcher tests."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from collections.abc import Mapping
from pathlib import Path

from rlm_mcp.index.search.grepworker import matching_lines

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def write(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body, encoding="utf-8")


def make_tree(root: Path, files: int = 320) -> Path:
    for i in range(files):
        d = root / f"pkg{i % 12}"
        d.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f'def func_{i}_{j}(x):\n    """Compute part {j} of item {i}."""\n'
            f"    return helper_{(i + j) % 7}(x) + {j}\n\n\n"
            for j in range(12)
        )
        (d / f"mod{i}.py").write_text(body + f"class Thing{i}:\n    pass\n")
    (root / "blob.bin").write_bytes(b"\0\1\2" * 100)
    return root


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())
            for t in ("files", "skipped", "defs", "refs")
        } | {"docs": sorted(conn.execute("SELECT path, start_line, qualname FROM docs").fetchall())}


# Words for random texts (trigram and ripgrep tests), with case-folding traps.
WORDS = [
    "load_config", "parse", "Parser", "HTTPError", "token", "Kelvin", "straße", "İstanbul",
    "ſtrange", "self", "return", "def", "class", "import os", "x = 1", "foo.bar(baz)",
    "naïve", "日本語", "a\tb", "if (x) {", "}", "#include <stdio.h>", "2024-01-31", "ǅ",
    "\u212aelvin", "KELVIN", "kelvin", "ISTANBUL", "istanbul", "strange", "STRANGE",
]  # fmt: skip


def scan(texts: dict[str, str], rx: re.Pattern[str]) -> list[tuple[str, int]]:
    return [(p, line) for p in sorted(texts) for line, _s, _e in matching_lines(rx, "", texts[p])]
