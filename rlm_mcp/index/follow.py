"""Following a shared index that another process writes (a read replica)."""

from __future__ import annotations

import logging
import threading

from rlm_mcp.errors import IndexUnavailable
from rlm_mcp.index.repository import Repository

__all__ = ["Follower"]

log = logging.getLogger(__name__)


class Follower:
    """Keeps a read replica's repository in step with the writer, another process.

    A replica serves a shared index without watching files; this thread polls
    the store's :meth:`~rlm_mcp.index.store.postgres.store.PostgresStore.generation` every
    ``interval`` seconds and, when the writer committed something, refreshes the
    repository: the files the writer already stored are reused (nothing is
    parsed), and the replica's file list, texts and version move on. The
    replica's checkout must be the writer's (a shared volume) or at its commit.
    """

    def __init__(self, repo: Repository, interval: float = 1.0) -> None:
        self.repo = repo
        self.interval = interval
        self.refreshes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rlm-follow:{repo.root.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _generation(self) -> int | None:
        generation = getattr(self.repo.store, "generation", None)
        if generation is None:
            return None
        try:
            return int(generation())
        except IndexUnavailable:
            return None

    def _run(self) -> None:
        seen = self._generation()
        while not self._stop.wait(self.interval):
            now = self._generation()
            if now is None or now == seen:
                continue
            seen = now
            try:
                self.repo.refresh()
                self.refreshes += 1
            except Exception:
                log.warning(
                    "following the shared index of %s failed", self.repo.root, exc_info=True
                )
