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


_SNAPSHOT = {
    # Rows by path, not by id: two loads may number the same files differently.
    "files": "SELECT path, size, mtime_ns, hash, language, lines, tokens, invalid_utf8, parsed, "
    "ranked FROM files",
    "skipped": "SELECT * FROM skipped",
    "defs": "SELECT f.path, d.id & 1048575, d.name, d.qualname, d.kind, d.start_line, "
    "d.end_line, d.signature, d.doc FROM defs d JOIN files f ON f.id = d.id >> 20",
    "refs": "SELECT f.path, r.id & 1048575, r.name, r.line, r.kind FROM refs r "
    "JOIN files f ON f.id = r.id >> 20",
    "texts": "SELECT f.path, c.text FROM content c JOIN files f ON f.id = c.file",
    "ranked": "SELECT term, doc, cnt FROM fts_vocab",
    "ranked_sizes": "SELECT f.path, s.id & 1048575, s.sz FROM fts_docsize s "
    "JOIN files f ON f.id = s.id >> 20",
    "ranked_totals": "SELECT block FROM fts_data WHERE id = 1",
}


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row, by path. ``ranked*`` is what the contentless ranked-search index
    holds: its vocabulary (term, rows, occurrences), each row's size and the totals
    BM25 reads; a deletion from it with other words than went in skews them."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_vocab USING fts5vocab(main, fts, row)"
        )
        return {t: sorted(conn.execute(sql).fetchall()) for t, sql in _SNAPSHOT.items()}


# Words for random texts (trigram and ripgrep tests), with case-folding traps.
WORDS = [
    "load_config", "parse", "Parser", "HTTPError", "token", "Kelvin", "straße", "İstanbul",
    "ſtrange", "self", "return", "def", "class", "import os", "x = 1", "foo.bar(baz)",
    "naïve", "日本語", "a\tb", "if (x) {", "}", "#include <stdio.h>", "2024-01-31", "ǅ",
    "\u212aelvin", "KELVIN", "kelvin", "ISTANBUL", "istanbul", "strange", "STRANGE",
]  # fmt: skip


def scan(texts: dict[str, str], rx: re.Pattern[str]) -> list[tuple[str, int]]:
    return [(p, line) for p in sorted(texts) for line, _s, _e in matching_lines(rx, "", texts[p])]
