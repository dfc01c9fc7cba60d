"""Where a cold load's time goes, stage by stage, on a sample of the monorepo corpus.

Usage: ``python benchmarks/cold_profile.py [--files 3000] [--seed 1]``

One process, no pool: for a random sample of the corpus' indexable files it
times each stage a parser process and the store writer run per file, and
``ctags`` on the same files. Figures are CPU seconds per MB of text, so they
add up to what one core spends; a cold load spreads the parser stages over
the cores while the writer (the store) runs in one process.

Stages: read + classify (decode, generated/minified checks, hash); tree-sitter
parse; the tags query's matches (C); our Python around them (nesting,
signatures, docs, references); ranked-search rows; pickling the result (the
hand-off from a parser process); the store's writes (``put_file`` in a bulk
load); and the text pass alone (``put_text``) with the trigram index build.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monorepo_corpus import CACHE, build  # noqa: E402

from rlm_mcp.index.discover.classify import classify  # noqa: E402
from rlm_mcp.index.parse.languages import has_tags, language_for_path  # noqa: E402
from rlm_mcp.index.parse.tags import _parser, extract_tags, load_query  # noqa: E402
from rlm_mcp.index.parse.worker import content_hash, count_lines, estimate_tokens  # noqa: E402
from rlm_mcp.index.search.ranking import doc_rows  # noqa: E402
from rlm_mcp.index.store.base import FileRow  # noqa: E402
from rlm_mcp.index.store.sqlite import SQLiteStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tree = build(CACHE)
    listed = subprocess.run(
        ["git", "-C", str(tree), "ls-files", "-z"], capture_output=True, text=True, check=True
    ).stdout.split("\0")
    rng = random.Random(args.seed)
    rng.shuffle(listed)
    stages = dict.fromkeys(
        ("classify", "parse", "query", "ours", "docs", "pickle", "store", "texts", "trigram"), 0.0
    )
    nbytes = 0
    sample: list[str] = []
    results = []
    by_lang: dict[str, list[float]] = {}
    for rel in listed:
        if len(sample) >= args.files:
            break
        path = tree / rel
        if not rel or not path.is_file():
            continue
        t0 = time.process_time()
        got = classify(rel, str(path), path.stat().st_size, 1 << 20)
        if got.skip is not None or got.text is None or got.data is None:
            continue
        content_hash(got.data)
        t1 = time.process_time()
        language = language_for_path(rel, got.text[:200].partition("\n")[0])
        if language is None or not has_tags(language):
            continue
        sample.append(rel)
        nbytes += len(got.data)
        stages["classify"] += t1 - t0
        query = load_query(language)
        t2 = time.process_time()
        tree_ = _parser(language).parse(got.data)
        t3 = time.process_time()
        if query is not None:
            from tree_sitter import QueryCursor

            for _ in QueryCursor(query).matches(tree_.root_node):
                pass
        t4 = time.process_time()
        tags = extract_tags(got.data, rel, language)
        t5 = time.process_time()
        defs = [
            (d.name, d.qualname, d.kind, rel, d.start_line, d.end_line, d.signature, d.doc)
            for d in tags.definitions
        ]
        refs = [(r.name, rel, r.line, r.kind) for r in tags.references]
        lines = count_lines(got.text)
        docs = doc_rows(rel, got.text, lines, defs)
        t6 = time.process_time()
        blob = pickle.dumps((got.text, defs, refs, docs))
        pickle.loads(blob)
        t7 = time.process_time()
        stages["parse"] += t3 - t2
        stages["query"] += t4 - t3
        stages["ours"] += max(0.0, (t5 - t4) - (t3 - t2) - (t4 - t3))
        stages["docs"] += t6 - t5
        stages["pickle"] += t7 - t6
        by_lang.setdefault(language, [0.0, 0.0])
        by_lang[language][0] += len(got.data)
        by_lang[language][1] += (t7 - t2) + (t1 - t0)
        row = FileRow(
            rel,
            len(got.data),
            1,
            content_hash(got.data),
            language,
            lines,
            estimate_tokens(got.text),
            got.invalid_utf8,
        )
        results.append((row, got.text, defs, refs, docs))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "p.sqlite")
        t0 = time.process_time()
        with store.bulk_load():
            for i in range(0, len(results), 48):
                with store.batch() as w:
                    for row, text, defs, refs, docs in results[i : i + 48]:
                        w.put_file(row, text, defs, refs, docs)
        stages["store"] = time.process_time() - t0
        store.close()
        store = SQLiteStore(Path(tmp) / "t.sqlite")
        t0 = time.process_time()
        with store.bulk_load():
            for i in range(0, len(results), 48):
                with store.batch() as w:
                    for row, text, *_ in results[i : i + 48]:
                        w.put_text(row, text)
        stages["texts"] = time.process_time() - t0
        t0 = time.process_time()
        while not store.index_texts(2000):
            pass
        stages["trigram"] = time.process_time() - t0
        store.close()
        lst = Path(tmp) / "files.txt"
        lst.write_text("\n".join(sample) + "\n")
        t0 = time.perf_counter()
        subprocess.run(
            ["ctags", "-f", str(Path(tmp) / "tags"), "-L", str(lst), "--fields=+n"],
            cwd=str(tree),
            check=False,
            capture_output=True,
        )
        ctags = time.perf_counter() - t0
    mb = nbytes / 1e6
    out = {
        "files": len(sample),
        "mb": round(mb, 1),
        "seconds_per_mb": {k: round(v / mb, 4) for k, v in stages.items()},
        "ctags_seconds_per_mb": round(ctags / mb, 4),
        "per_language_seconds_per_mb": {
            k: round(v[1] / (v[0] / 1e6), 4) for k, v in sorted(by_lang.items()) if v[0] > 1e5
        },
    }
    print(json.dumps(out, indent=1))
    total = sum(v for k, v in stages.items() if k not in ("texts", "trigram"))
    print(
        f"cold work {total / mb:.3f} s/MB on one core (parse {stages['parse'] / mb:.3f}, "
        f"query {stages['query'] / mb:.3f}, ours {stages['ours'] / mb:.3f}, store "
        f"{stages['store'] / mb:.3f}); ctags {ctags / mb:.3f} s/MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
