"""The PostgreSQL index's tables, their creation (:func:`init_schema`), and the SQL helpers
its modules share.

Every table carries a ``repo_id`` (one row of ``rlm_repos`` per repository
identity); text columns compared or ordered use the ``C`` collation, so paths
and names sort byte-wise exactly as SQLite's ``BINARY`` does. An *overlay*
identity (``rlm_repos.base_id`` set) sees its own rows plus its base's rows for
every path it has not shadowed (:func:`visible`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

__all__ = [
    "ALL_TABLES",
    "PER_PATH",
    "PER_PATH_ALL",
    "PER_REPO",
    "SCHEMA_VERSION",
    "TABLES",
    "TERMS",
    "TERMS_BY_REPO",
    "TRGM",
    "content_text",
    "init_schema",
    "like_escape",
    "lock_key",
    "one_line",
    "safe_location",
    "visible",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_C = 'COLLATE "C"'
TABLES = f"""
CREATE TABLE IF NOT EXISTS rlm_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS rlm_repos (
    repo_id bigserial PRIMARY KEY, identity text {_C} NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(), base_id bigint,
    generation bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rlm_shadow (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_meta (
    repo_id bigint NOT NULL, key text {_C} NOT NULL, value text NOT NULL,
    PRIMARY KEY (repo_id, key)
);
CREATE TABLE IF NOT EXISTS rlm_files (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, size bigint NOT NULL,
    mtime_ns bigint NOT NULL, hash text NOT NULL, language text, lines integer NOT NULL,
    tokens integer NOT NULL, invalid_utf8 boolean NOT NULL, parsed boolean NOT NULL,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_content (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, text text {_C} NOT NULL, raw bytea,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_skipped (
    repo_id bigint NOT NULL, path text {_C} NOT NULL, size bigint NOT NULL,
    mtime_ns bigint NOT NULL, reason text NOT NULL, detail text NOT NULL,
    PRIMARY KEY (repo_id, path)
);
CREATE TABLE IF NOT EXISTS rlm_defs (
    repo_id bigint NOT NULL, name text {_C} NOT NULL, qualname text {_C} NOT NULL,
    kind text {_C} NOT NULL, path text {_C} NOT NULL, start_line integer NOT NULL,
    end_line integer NOT NULL, signature text NOT NULL, doc text NOT NULL
);
CREATE TABLE IF NOT EXISTS rlm_refs (
    repo_id bigint NOT NULL, name text {_C} NOT NULL, path text {_C} NOT NULL,
    line integer NOT NULL, kind text NOT NULL
);
CREATE TABLE IF NOT EXISTS rlm_docs (
    id bigserial PRIMARY KEY, repo_id bigint NOT NULL, path text {_C} NOT NULL,
    start_line integer NOT NULL, end_line integer NOT NULL, qualname text NOT NULL,
    kind text NOT NULL, signature text NOT NULL, doc text NOT NULL, ntok integer NOT NULL,
    terms text[] {_C} NOT NULL, ws integer[] NOT NULL
);
CREATE INDEX IF NOT EXISTS rlm_defs_path ON rlm_defs (repo_id, path, start_line);
CREATE INDEX IF NOT EXISTS rlm_defs_name ON rlm_defs (repo_id, name);
CREATE INDEX IF NOT EXISTS rlm_defs_lname ON rlm_defs (repo_id, lower(name));
CREATE INDEX IF NOT EXISTS rlm_defs_qualname ON rlm_defs (repo_id, qualname);
CREATE INDEX IF NOT EXISTS rlm_refs_path ON rlm_refs (repo_id, path);
CREATE INDEX IF NOT EXISTS rlm_refs_name ON rlm_refs (repo_id, name, path, line);
CREATE INDEX IF NOT EXISTS rlm_docs_path ON rlm_docs (repo_id, path)
"""
TRGM = "CREATE INDEX IF NOT EXISTS rlm_content_trgm ON rlm_content USING gin (text gin_trgm_ops)"
TERMS_BY_REPO = "CREATE INDEX IF NOT EXISTS rlm_docs_terms ON rlm_docs USING gin (repo_id, terms)"
"""The ranked-search terms of a row, per repository (needs ``btree_gin``)."""
TERMS = "CREATE INDEX IF NOT EXISTS rlm_docs_terms ON rlm_docs USING gin (terms)"
"""The same without ``btree_gin``: every repository's rows in one posting list."""
PER_PATH = ("rlm_files", "rlm_content", "rlm_skipped", "rlm_defs", "rlm_refs", "rlm_docs")
PER_PATH_ALL = PER_PATH
PER_REPO = (*PER_PATH_ALL, "rlm_meta", "rlm_shadow")
ALL_TABLES = (*PER_REPO, "rlm_terms", "rlm_repos", "rlm_schema")
"""Every table a schema version ever had (``rlm_terms``: version 1), dropped on a version change."""


def lock_key(kind: str, identity: str) -> int:
    """A signed 64-bit advisory-lock key for ``kind`` on one repository identity."""
    digest = hashlib.sha256(f"rlm-mcp:{kind}:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def safe_location(url: str) -> str:
    """``url`` without its password (URL or ``key=value`` form), for messages."""
    if "://" in url:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            cred, host = netloc.rsplit("@", 1)
            netloc = cred.split(":", 1)[0] + "@" + host
        query = "&".join(q for q in parts.query.split("&") if not q.startswith("password="))
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", url)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def visible(alias: str, base: int | None, *, via_index: bool = True) -> str:
    """SQL: the rows of ``alias`` this identity sees (named parameters ``me`` and ``base``).

    An overlay identity (``base`` set) sees its own rows and those of its base
    whose path it has not shadowed (written or deleted on its own).
    ``via_index=False`` writes the repository test so that no B-tree on
    ``repo_id`` can serve it, leaving the planner another index (ranked search's
    GIN on terms, which it under-costs).
    """
    repo = f"{alias}.repo_id" if via_index else f"({alias}.repo_id + 0)"
    if base is None:
        return f"{repo} = %(me)s"
    return (
        f"({repo} = %(me)s OR ({repo} = %(base)s AND NOT EXISTS "
        f"(SELECT 1 FROM rlm_shadow sh WHERE sh.repo_id = %(me)s AND sh.path = {alias}.path)))"
    )


def content_text(text: str, raw: bytes | None) -> str:
    return text if raw is None else bytes(raw).decode("utf-8")


def like_escape(literal: str) -> str:
    return literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@contextmanager
def _schema_step(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """One transaction under the schema's advisory lock: processes opening at once take turns."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema", ""),))
        yield


def init_schema(conn: psycopg.Connection[Any], identity: str) -> tuple[int, int | None, bool]:
    """Create (or rebuild at another version) the tables and register ``identity``.

    Returns ``(repo_id, base_id, trgm)``: the identity's id, the identity it
    overlays (``None`` for a full one), and whether ``pg_trgm`` is available.
    """
    with _schema_step(conn):
        has = conn.execute("SELECT to_regclass('rlm_schema') IS NOT NULL").fetchone()
        version = None
        if has and has[0]:
            row = conn.execute("SELECT max(version) FROM rlm_schema").fetchone()
            version = row[0] if row else None
        if version is not None and version != SCHEMA_VERSION:
            log.info("index schema %s != %s: rebuilding", version, SCHEMA_VERSION)
            for table in ALL_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        for stmt in TABLES.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        if version != SCHEMA_VERSION:
            conn.execute("DELETE FROM rlm_schema")
            conn.execute("INSERT INTO rlm_schema VALUES (%s)", (SCHEMA_VERSION,))
    trgm = False
    try:
        with _schema_step(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.execute(TRGM)
        trgm = True
    except psycopg.Error as exc:
        log.warning("pg_trgm is unavailable (%s): grep reads every text", one_line(exc))
    try:
        with _schema_step(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
            conn.execute(TERMS_BY_REPO)
    except psycopg.Error as exc:
        log.warning(
            "btree_gin is unavailable (%s): ranked search looks terms up across every "
            "repository in the database",
            one_line(exc),
        )
        with _schema_step(conn):
            conn.execute(TERMS)
    conn.execute(
        "INSERT INTO rlm_repos (identity) VALUES (%s) ON CONFLICT (identity) DO NOTHING",
        (identity,),
    )
    row = conn.execute(
        "SELECT repo_id, base_id FROM rlm_repos WHERE identity = %s", (identity,)
    ).fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else int(row[1]), trgm
