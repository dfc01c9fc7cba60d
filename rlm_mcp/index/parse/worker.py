"""The parser helpers: what becomes of one file on its way into the store, and the pool
that does it for many.

:func:`process` reads, classifies, decodes and tags one file; it runs in-process
for a handful of files and in a process pool (:func:`parse_items`) for more,
which yields results in batches as they finish so that memory stays bounded
whatever the repository size.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

from rlm_mcp.config import IndexSettings
from rlm_mcp.index.discover.classify import classify
from rlm_mcp.index.model import DefRow, FileRow, RefRow, SkippedFile
from rlm_mcp.index.search.ranking import DocRow

__all__ = [
    "Parsed",
    "content_hash",
    "count_lines",
    "estimate_tokens",
    "parse_items",
    "process",
    "process_batch",
]

Item = tuple[str, str, int, int]
"""path, abspath, size, mtime_ns: one file to parse."""
SHEBANG_SNIFF = 256
POOL_THRESHOLD = 200
BATCH_FILES = 48
PARENT_CHECK_SECONDS = 0.2


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class Parsed:
    """A file ready for the store: its row, text and small tag tuples (cheap to pickle)."""

    row: FileRow
    text: str
    defs: list[DefRow]
    refs: list[RefRow]
    docs: list[DocRow]

    @property
    def path(self) -> str:
        return self.row.path


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual figure for code with BPE tokenizers."""
    return (len(text) + 3) // 4


def count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def process(
    item: Item,
    max_file_bytes: int,
    *,
    explicit: bool = False,
    ranked: bool = True,
    tags: bool = True,
) -> Parsed | SkippedFile:
    """Classify, decode and tag one file; runs in a pool worker or in-process.

    ``ranked`` also computes the file's ranked-search rows here, in parallel,
    rather than in the process that writes the store. ``tags=False`` stops
    after decoding (the first pass of a cold load: text now, symbols later).
    """
    from rlm_mcp.index.parse.languages import has_tags, language_for_path
    from rlm_mcp.index.parse.tags import extract_tags
    from rlm_mcp.index.search.ranking import doc_rows

    rel, abspath, size, mtime_ns = item
    got = classify(rel, abspath, size, max_file_bytes, explicit=explicit)
    if got.skip is not None:
        return got.skip
    text = got.text or ""
    language = language_for_path(rel, text[:SHEBANG_SNIFF].partition("\n")[0])
    defs: list[DefRow] = []
    refs: list[RefRow] = []
    if tags and language is not None and has_tags(language):
        found = extract_tags(got.data, rel, language)
        defs = [
            (d.name, d.qualname, d.kind, rel, d.start_line, d.end_line, d.signature, d.doc)
            for d in found.definitions
        ]
        refs = [(r.name, rel, r.line, r.kind) for r in found.references]
    lines = count_lines(text)
    row = FileRow(
        rel,
        len(got.data),
        mtime_ns,
        content_hash(got.data),
        language,
        lines,
        estimate_tokens(text),
        got.invalid_utf8,
    )
    docs = doc_rows(rel, text, lines, defs) if ranked and tags else []
    return Parsed(row, text, defs, refs, docs)


def process_batch(
    items: list[Item],
    max_file_bytes: int,
    ranked: bool = True,
    tags: bool = True,
) -> list[Parsed | SkippedFile]:
    return [process(item, max_file_bytes, ranked=ranked, tags=tags) for item in items]


def _mp_context() -> multiprocessing.context.BaseContext:
    """``spawn``: parser helpers are children of this process, so they die with it.

    Under ``fork`` a threaded server could deadlock; under ``forkserver`` the
    helpers are the fork server's children and outlive a killed parent (they
    hold their own queue's write end, so they never see EOF). Spawned helpers
    exit when their parent process is gone (:func:`_die_with_parent`).
    """
    return multiprocessing.get_context("spawn")


def _die_with_parent(parent: int) -> None:
    """Pool initializer: this helper exits soon after its parent process ``parent`` dies.

    Not ``PR_SET_PDEATHSIG``: that fires when the *thread* that forked the helper
    exits, and a load's thread ends while the helpers of an interrupted pool may
    still be writing a result; a helper killed half-way through that write left
    the pool's result pipe with half a message, and the pool's manager thread
    blocked on it forever, so the process hung at exit after Ctrl-C. A helper is
    reparented when its parent process dies, so a daemon thread watching
    ``getppid`` sees it within :data:`PARENT_CHECK_SECONDS`.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def parse_items(
    items: list[Item], settings: IndexSettings, *, explicit: bool, tags: bool
) -> Generator[list[Parsed | SkippedFile], None, None]:
    """Yield parse results in batches; a process pool only when it pays off.

    ``explicit`` marks a file the user named directly (see :func:`classify`).
    """
    limit = settings.max_file_bytes
    ranked = settings.ranked_search
    if len(items) < POOL_THRESHOLD:
        for item in items:
            yield [process(item, limit, explicit=explicit, ranked=ranked, tags=tags)]
        return
    workers = settings.workers or os.cpu_count() or 1
    batches = [items[i : i + BATCH_FILES] for i in range(0, len(items), BATCH_FILES)]
    max_inflight = workers * 3
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        pending: set[Future[list[Parsed | SkippedFile]]] = set()
        it = iter(batches)
        try:
            for batch in it:
                pending.add(pool.submit(process_batch, batch, limit, ranked, tags))
                if len(pending) >= max_inflight:
                    break
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.add(pool.submit(process_batch, nxt, limit, ranked, tags))
                    yield fut.result()
        finally:
            # A consumer that stops early (close, Ctrl-C) does not wait for queued batches.
            pool.shutdown(wait=False, cancel_futures=True)
