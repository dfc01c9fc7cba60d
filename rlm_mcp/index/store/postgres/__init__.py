"""The PostgreSQL store: one shared index per repository identity, an advisory-lock writer,
``pg_trgm`` for grep and BM25 equal to SQLite's FTS5 (:mod:`.words`)."""
