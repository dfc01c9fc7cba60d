"""Read replicas follow the writer: each committed change shows up without parsing it again."""

from __future__ import annotations

from pathlib import Path

import anyio

from rlm_mcp.config import IndexSettings, Settings
from rlm_mcp.index.follow import Follower
from rlm_mcp.index.repository import load
from rlm_mcp.index.store.postgres.store import PostgresStore
from rlm_mcp.service import RlmService
from tests.index.index_helpers import write
from tests.pg_cluster import shared
from tests.polling import wait_until

FILES = {"a.py": "def alpha():\n    return 1\n", "b.py": "def beta():\n    return alpha()\n"}


def test_a_replica_sees_the_writers_change_without_parsing_it(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    settings = IndexSettings(index_url=shared().url, workers=1, watch=False)
    writer = load(tmp_path, settings)
    replica = load(tmp_path, settings)
    follower = Follower(replica, interval=0.05)
    follower.start()
    try:
        assert replica.report.parsed == 0
        v0 = replica.version
        write(tmp_path, {"c.py": "def gamma_new_function():\n    return beta()\n"})
        writer.apply_changes({"c.py"}, set())
        wait_until(lambda: "c.py" in replica.files(), 20, "the replica to see c.py", interval=0.02)
        assert replica.version > v0
        assert replica.report.parsed == 0, "the replica parsed what the writer stored"
        assert [d.name for d in replica.symbols("gamma_new_function")] == ["gamma_new_function"]
        assert replica.grep("gamma_new_function")
        (tmp_path / "a.py").unlink()
        writer.apply_changes(set(), {"a.py"})
        wait_until(
            lambda: "a.py" not in replica.files(), 20, "the replica to drop a.py", interval=0.02
        )
    finally:
        follower.stop()
        replica.close()
        writer.close()


def test_the_generation_moves_with_files_not_with_mtimes_or_metadata(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    settings = IndexSettings(index_url=shared().url, workers=1, watch=False)
    repo = load(tmp_path, settings)
    store = repo.store
    assert isinstance(store, PostgresStore)
    try:
        g = store.generation()
        with store.batch() as b:
            b.touch("a.py", 12345)
            b.set_meta("root", "/elsewhere")
            b.delete_paths(["not-stored.py"])
        assert store.generation() == g
        with store.batch() as b:
            b.delete_paths(["a.py"])
        assert store.generation() == g + 1
    finally:
        repo.close()


async def test_a_server_without_a_watcher_on_a_shared_index_follows_it(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    index = IndexSettings(index_url=shared().url, workers=1, watch=False, follow_seconds=0.05)
    service = RlmService(Settings(index=index, allowed_roots=(tmp_path,)))
    try:
        loaded, _ = await service.load(tmp_path)
        assert loaded.follower is not None and loaded.watcher is None
    finally:
        await service.aclose()
    assert not loaded.follower._thread.is_alive()
    await anyio.sleep(0)
