"""``rlm-mcp cache list | prune``: what the index caches hold, and removing the dead ones.

A cache is ``<cache_dir>/<name>-<hash>.sqlite`` plus its ``-wal``, ``-shm``
and ``.lock`` companions; the hash is of the indexed path, so the file name
alone cannot say which path it indexes. The path is the store's meta key
``root`` (written at every CLI load, see :func:`~rlm_mcp.cli._common.remember_root`);
a cache written before that shows its root as unknown and is never judged
"missing". "Last used" is the newest modification time of the cache's files:
every load, search and watcher update touches them.

``prune`` removes caches whose root no longer exists (``--missing``, the
default), or that were not used for ``--older-than DAYS``, skipping any cache a
writer holds (its ``.lock``); and trajectories older than
``trajectory_retention_days``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_mcp.cli._common import EXIT_OK, Ctx, UsageError, dump, say

_COMPANIONS = ("", "-wal", "-shm", ".lock")
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    db: Path
    files: tuple[Path, ...]
    bytes: int
    last_used: float
    root: str | None

    @property
    def root_exists(self) -> bool | None:
        from rlm_mcp.index.discover.names import unescape

        return None if self.root is None else Path(unescape(self.root)).exists()

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.db),
            "root": self.root,
            "root_exists": self.root_exists,
            "bytes": self.bytes,
            "last_used": _iso(self.last_used),
        }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _recorded_root(db: Path, stamps: dict[Path, tuple[int, int]]) -> str | None:
    """The root the store recorded, read through the store's API.

    Opening a store writes its schema row; a listing is not a use, so the
    files' times are put back afterwards.
    """
    from rlm_mcp.index.store.sqlite import SQLiteStore

    try:
        store = SQLiteStore(db)
    except Exception:
        return None
    try:
        return store.meta("root")
    except Exception:
        return None
    finally:
        store.close()
        newest = max(stamps.values(), default=None)
        for suffix in _COMPANIONS[:3]:
            p = Path(str(db) + suffix)
            stamp = stamps.get(p, newest)
            if stamp is not None and p.exists():
                try:
                    os.utime(p, ns=stamp)
                except OSError:
                    pass


def scan(cache_dir: Path) -> list[CacheEntry]:
    if not cache_dir.is_dir():
        return []
    entries = []
    for db in sorted(cache_dir.glob("*.sqlite")):
        files, size, stamps = [], 0, {}
        for suffix in _COMPANIONS:
            p = Path(str(db) + suffix)
            st = _stat(p)
            if st is None:
                continue
            files.append(p)
            size += st.st_size
            if suffix != ".lock":
                stamps[p] = (st.st_atime_ns, st.st_mtime_ns)
        last = max((m for _, m in stamps.values()), default=0) / 1e9
        root = _recorded_root(db, stamps)
        entries.append(CacheEntry(db, tuple(files), size, last, root))
    return entries


def _trajectories(directory: Path | None) -> list[tuple[Path, os.stat_result]]:
    if directory is None or not directory.is_dir():
        return []
    found = [(p, _stat(p)) for p in sorted(directory.glob("*.jsonl"))]
    return [(p, st) for p, st in found if st is not None]


async def cmd_cache_list(args: argparse.Namespace, ctx: Ctx) -> int:
    cache_dir = ctx.config.settings.index.cache_dir
    assert cache_dir is not None
    entries = scan(cache_dir)
    traj_dir = ctx.config.settings.trajectory_dir
    trajs = _trajectories(traj_dir)
    traj_bytes = sum(st.st_size for _, st in trajs)
    if args.json:
        dump(
            {
                "cache_dir": str(cache_dir),
                "caches": [e.as_dict() for e in entries],
                "trajectories": {
                    "dir": str(traj_dir) if traj_dir else None,
                    "files": len(trajs),
                    "bytes": traj_bytes,
                    "retention_days": ctx.config.trajectory_retention_days,
                },
            }
        )
        return EXIT_OK
    if entries:
        print(f"{'SIZE':>10}  {'LAST USED':<16}  ROOT")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        if e.root is None:
            root = f"? (not recorded; {e.db.name})"
        else:
            root = e.root + ("" if e.root_exists else "  (missing)")
        print(f"{human(e.bytes):>10}  {when:<16}  {root}")
    total = sum(e.bytes for e in entries)
    n = len(entries)
    print(f"{n} cache{'s' if n != 1 else ''}, {human(total)} in {cache_dir}")
    if traj_dir is not None:
        print(f"trajectories: {len(trajs)} files, {human(traj_bytes)} in {traj_dir}")
    return EXIT_OK


def _remove(entry: CacheEntry) -> str | None:
    """Delete a cache's files; ``None`` when done, else why not (a writer holds it)."""
    lock = Path(str(entry.db) + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return f"cannot open its lock: {exc.strerror or exc}"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "in use (a load or a watcher is writing it)"
        for suffix in _COMPANIONS:
            try:
                Path(str(entry.db) + suffix).unlink(missing_ok=True)
            except OSError as exc:
                return f"cannot remove it: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return None


async def cmd_cache_prune(args: argparse.Namespace, ctx: Ctx) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise UsageError("--older-than must be 0 or more days")
    missing = args.missing or args.older_than is None
    cache_dir = ctx.config.settings.index.cache_dir
    assert cache_dir is not None
    now = time.time()
    verb = "would remove" if args.dry_run else "removed"
    freed, removed = 0, 0
    for e in scan(cache_dir):
        why = None
        if missing and e.root is not None and not e.root_exists:
            why = f"its root {e.root} no longer exists"
        elif args.older_than is not None and now - e.last_used > args.older_than * _DAY:
            why = f"unused for {(now - e.last_used) / _DAY:.0f} days"
        if why is None:
            continue
        problem = None if args.dry_run else _remove(e)
        if problem:
            say(f"rlm-mcp: kept {e.db.name} ({e.root or 'root unknown'}): {problem}")
            continue
        freed, removed = freed + e.bytes, removed + 1
        print(f"{verb} {e.db.name} ({human(e.bytes)}): {why}")
    days = ctx.config.trajectory_retention_days
    old = 0
    if days > 0:
        for p, st in _trajectories(ctx.config.settings.trajectory_dir):
            if now - st.st_mtime > days * _DAY:
                if not args.dry_run:
                    try:
                        p.unlink()
                    except OSError as exc:
                        say(f"rlm-mcp: kept {p}: {exc.strerror or exc}")
                        continue
                old, freed = old + 1, freed + st.st_size
    if old:
        print(f"{verb} {old} trajectories older than {days} days")
    print(f"{verb} {removed} cache{'s' if removed != 1 else ''}; {human(freed)} freed")
    return EXIT_OK
