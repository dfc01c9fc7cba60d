"""Keep a loaded repository fresh while files change on disk.

:class:`RepositoryWatcher` (:mod:`.watcher`) debounces file events into
batches for :meth:`~rlm_mcp.index.repository.Repository.apply_changes`;
:mod:`.inotify` judges whether inotify can cover a tree and reports the
watches the kernel refuses, so the watcher can fall back to polling.
"""

from rlm_mcp.watch.watcher import Mode, RepositoryWatcher

__all__ = ["Mode", "RepositoryWatcher"]
