"""PostgresStore specifics: shared identities, the advisory-lock writer, grep prefilter, errors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.model import DefQuery, FileRow
from rlm_mcp.index.store.base import IndexStore
from rlm_mcp.index.store.postgres.store import PostgresStore, open_text_reader, safe_location
from rlm_mcp.index.store.sqlite import SQLiteStore
from tests.pg_cluster import postgres_store, shared
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]


def _row(path: str, text: str, h: str | None = None) -> FileRow:
    h = h or hashlib.sha256(text.encode()).hexdigest()
    return FileRow(path, len(text), 1, h, "python", text.count("\n"), 3, False)


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    s: IndexStore = (
        SQLiteStore(tmp_path / "i.sqlite")
        if request.param == "sqlite"
        else postgres_store(tmp_path)
    )
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresStore]:
    s = postgres_store(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_put_text_stores_a_file_to_parse_later_and_put_file_completes_it(
    any_store: IndexStore,
) -> None:
    s = any_store
    with s.batch() as w:
        w.put_text(_row("a.py", "def f(): pass\n"), "def f(): pass\n")
        w.put_text(_row("b.py", "x = 1\n"), "x = 1\n")
    assert s.unparsed_paths() == ["a.py", "b.py"]
    assert s.text("a.py") == "def f(): pass\n"
    with s.batch() as w:
        defs = [("f", "f", "function", "a.py", 1, 1, "def f():", "")]
        w.put_file(_row("a.py", "def f(): pass\n"), "def f(): pass\n", defs, [])
    assert s.unparsed_paths() == ["b.py"]
    # The same text again through put_text: only the row changes; symbols stay.
    with s.batch() as w:
        w.put_text(replace(_row("a.py", "def f(): pass\n"), mtime_ns=99), "def f(): pass\n")
    assert s.unparsed_paths() == ["b.py"]
    assert s.file_rows()["a.py"].mtime_ns == 99
    assert s.symbol_count() == 1
    assert s.index_texts(100) is True
    done, total = s.text_index_progress()
    assert done == total == 2


def test_grep_candidates_are_a_superset_of_files_holding_every_literal(
    any_store: IndexStore,
) -> None:
    s = any_store
    texts = {
        "a.py": "def Load_Config(path):\n    return parse(path)\n",
        "b.py": "CONFIG = load_config('x')\n",
        "c.py": "nothing to see\x00here\n",
        "d.py": "100% of_value\n",
    }
    with s.batch() as w:
        for p, t in texts.items():
            w.put_file(_row(p, t), t, [], [])

    def cand(alternatives: list[list[str]]) -> set[str]:
        got = s.grep_candidates(alternatives)
        assert got is not None, alternatives
        return got

    assert cand([["load_config"]]) >= {"a.py", "b.py"}
    assert "c.py" not in cand([["load_config"]])
    assert cand([["parse", "load_config"]]) >= {"a.py"}
    assert "b.py" not in cand([["parse", "load_config"]])
    assert cand([["zzzz"], ["see"]]) >= {"c.py"}
    assert cand([["0% of_"]]) >= {"d.py"}
    assert "a.py" not in cand([["0% of_"]])
    assert s.text("c.py") == texts["c.py"]


def test_two_identities_in_one_database_never_see_each_other(tmp_path: Path) -> None:
    url = shared().url
    a = PostgresStore(url, f"{tmp_path}/a")
    b = PostgresStore(url, f"{tmp_path}/b")
    try:
        with a.batch() as w:
            w.put_file(_row("x.py", "x = 1\n"), "x = 1\n", [], [])
        assert b.file_rows() == {}
        assert b.text("x.py") is None
        again = PostgresStore(url, f"{tmp_path}/a")
        assert set(again.file_rows()) == {"x.py"}
        again.close()
    finally:
        a.close()
        b.close()


def test_the_grep_helper_reads_texts_through_the_reader_spec(pg: PostgresStore) -> None:
    with pg.batch() as w:
        w.put_file(_row("x.py", "x = 1\n"), "x = 1\n", [], [])
    module, arg = pg.reader_spec()
    assert module == "rlm_mcp.index.store.postgres.store"
    reader = open_text_reader(arg)
    try:
        assert reader.read(["x.py", "nope.py"]) == {"x.py": "x = 1\n"}
    finally:
        reader.close()


def test_a_password_never_shows_in_the_location() -> None:
    assert safe_location("postgresql://bob:s3cret@db:5432/rlm") == "postgresql://bob@db:5432/rlm"
    assert "s3cret" not in safe_location("postgresql://db/rlm?user=bob&password=s3cret")
    assert "s3cret" not in safe_location("host=db password=s3cret dbname=rlm")


def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://rlm:pw@/postgres?host={tmp_path}&connect_timeout=2"
    with pytest.raises(IndexUnavailable) as info:
        PostgresStore(url, "nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert "cannot reach the index database" in message
    assert "pw" not in message.replace("postgres", "")


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from rlm_mcp.index.store.postgres.store import PostgresStore
    s = PostgresStore(sys.argv[1], sys.argv[2])
    with s.writer():
        print("locked", flush=True)
        time.sleep(600)
    """
)


def test_a_killed_writer_frees_the_lock_for_the_next_process(tmp_path: Path) -> None:
    url = shared().url
    identity = f"takeover:{tmp_path}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, identity], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        store = PostgresStore(url, identity)
        got: list[float] = []

        def take() -> None:
            with store.writer():
                got.append(time.monotonic())

        t = threading.Thread(target=take)
        t.start()
        assert not poll(lambda: bool(got), 0.5, interval=0.02), (
            "the lock was taken while its holder lived"
        )
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        t.join(timeout=30)
        assert got and got[0] >= killed
        store.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_writer_whose_lock_session_died_stops_writing(pg: PostgresStore) -> None:
    import psycopg

    with pg.writer():
        with pg.batch() as w:
            w.set_meta("k", "1")
        conn = pg._writer_conn
        assert conn is not None
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(IndexUnavailable, match="lost the writer lock"), pg.batch() as w:
            w.set_meta("k", "2")
    assert pg.meta("k") == "1"


def test_a_nul_past_the_binary_sniff_is_stored_not_fatal(pg: PostgresStore) -> None:
    text = "def f():\n    '''a\x00b'''\n"
    defs = [("f", "f", "function", "n.py", 1, 2, "def f():", "a\x00b")]
    with pg.batch() as w:
        w.put_file(_row("n.py", text), text, defs, [])
    assert pg.text("n.py") == text
    assert [d.doc for d in pg.find_defs(DefQuery("exact", "f"))] == ["a\ufffdb"]
