"""The SQLite implementation of :class:`~rlm_mcp.index.store.base.IndexStore`.

Every SQL statement of the SQLite index lives in this package: the tables
(:mod:`.schema`), the writes of one transaction (:mod:`.write`), the reads
(:mod:`.reads`), ranked search (:mod:`.ranked`) and the store itself
(:mod:`.store`). File text lives in SQLite (table ``content``) next to the
symbols: a warm load touches no file bodies and grep can stream texts in
batches. The database runs in WAL mode with a busy timeout, so several
processes may read it while one writes.

One writer per repository: a load or a watcher batch holds
:meth:`SQLiteStore.writer`, an exclusive ``flock`` on ``<db>.lock`` that
serialises writers across processes (a second process loading the same
repository waits, then reuses the first one's work). Inside it, each batch is
a ``BEGIN IMMEDIATE`` transaction, so a crash never leaves half a file.

A cold load may drop the name indexes and build them once at the end
(:meth:`SQLiteStore.bulk_load`); the per-path indexes stay, so replacing a
file is always a keyed delete. Opening a store recreates any index that is
missing, so a load killed half-way leaves nothing slow behind.

Grep prefilters with a trigram index (``tri``: FTS5's trigram tokenizer,
contentless, no positions, about a quarter of the text's size): a pattern's
required literals (:mod:`~rlm_mcp.index.search.literals`) select the candidate files.
Rows of ``content`` get ids that are never reused; every row with an id up to
meta ``tri_upto`` is in ``tri``, and once meta ``tri_done`` is 1 every row is
(each write keeps it so). A cold load defers it and :meth:`SQLiteStore.index_texts`
fills it in steps, while rows past ``tri_upto`` stay candidates for every grep.

Ranked search is a contentless FTS5 table (``porter`` stemming, BM25): one row
per definition (its name split into words, its path, signature, docstring and
the comments inside it; rowid the definition's) and one per file (its path and
module docstring; rowid ``file_id << ROW_BITS``). No text is stored twice
(schema 6): a path lives once in ``files`` and other tables name the file by
id (a file's definitions and references are one key range, so they need no
per-file index), texts are zlib-compressed, and a file's ranked words are
derived again from its text and definitions when its rows are deleted.
"""

from rlm_mcp.index.store.sqlite.schema import SCHEMA_VERSION, db_path_for
from rlm_mcp.index.store.sqlite.store import SQLiteStore, TextReader, open_text_reader

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "TextReader", "db_path_for", "open_text_reader"]
