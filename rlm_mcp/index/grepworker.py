"""Regex search in a helper process that can be killed.

Python's ``re`` holds the GIL for the whole of a match, and a pattern like
``(a+)+b`` takes time exponential in the line's length: run in the server, one
such call (from a client, or from model code steered by a hostile repository
line) freezes every tool of every client. So grep runs here, in a child
process per repository that the server kills when a call overruns its time
limit; the server's own threads never run user regexes.

The child keeps the repository's texts (read from the store's SQLite file,
read-only) between calls and refreshes the paths the index changed since its
last call, so a grep costs one round trip. Hits are capped while they are
built, and each hit's text is clipped, so no call can balloon memory.

The child reads texts through the store's read-only text reader
(:meth:`~rlm_mcp.index.storage.IndexStore.reader_spec`), so it needs no SQL of
its own and works with any store.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import re
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["GrepRequest", "GrepTimeout", "GrepWorker", "grep_text"]

HIT_TEXT_CHARS = 300
ALARM_GRACE = 5
"""Seconds past the server's own timeout after which a helper's alarm ends it (default action)."""
TEXT_BATCH = 500


class GrepTimeout(Exception):
    """The pattern ran past its time limit; the helper was killed."""


@dataclass(frozen=True, slots=True)
class GrepRequest:
    """One grep: compiled in the child; ``changed`` is None to reload every text."""

    reader: tuple[str, str]
    version: int
    changed: tuple[str, ...] | None
    cache_limit: int
    paths: tuple[str, ...]
    pattern: str
    flags: int
    literal: str
    max_results: int


def grep_text(
    rx: re.Pattern[str],
    lit: str,
    path: str,
    text: str,
    hits: list[tuple[str, int, str]],
    limit: int,
) -> None:
    """Append ``(path, line, text)`` for each matching line of ``text`` until ``limit`` hits."""
    line_no, line_pos, pos, n = 1, 0, 0, len(text)
    while pos <= n:
        if lit:
            i = text.find(lit, pos)
            if i < 0:
                return
            ls = text.rfind("\n", 0, i) + 1
            le = text.find("\n", i)
            if le < 0:
                le = n
            if rx.search(text, ls, le) is None:
                pos = le + 1
                continue
        else:
            m = rx.search(text, pos)
            if m is None:
                return
            ls = text.rfind("\n", 0, m.start()) + 1
            le = text.find("\n", m.start())
            if le < 0:
                le = n
            if m.end() > le and rx.search(text, ls, le) is None:
                pos = le + 1
                continue
        line_no += text.count("\n", line_pos, ls)
        line_pos = ls
        line = text[ls:le].rstrip("\r")
        if len(line) > HIT_TEXT_CHARS:
            line = line[:HIT_TEXT_CHARS] + "…"
        hits.append((path, line_no, line))
        if len(hits) >= limit:
            return
        pos = le + 1


class _Child:
    """The helper's state: one database's texts (while they fit ``cache_limit``)."""

    def __init__(self) -> None:
        self.spec: tuple[str, str] | None = None
        self.reader: Any = None
        self.texts: dict[str, str] = {}
        self.chars = 0

    def _connect(self, spec: tuple[str, str]) -> Any:
        if self.reader is None or self.spec != spec:
            if self.reader is not None:
                self.reader.close()
            module, arg = spec
            self.reader = importlib.import_module(module).open_text_reader(arg)
            self.spec = spec
            self._forget()
        return self.reader

    def _forget(self) -> None:
        self.texts, self.chars = {}, 0

    def grep(self, req: GrepRequest) -> list[tuple[str, int, str]]:
        reader = self._connect(req.reader)
        if req.changed is None:
            self._forget()
        else:
            for p in req.changed:
                old = self.texts.pop(p, None)
                if old is not None:
                    self.chars -= len(old)
        rx = re.compile(req.pattern, req.flags)
        hits: list[tuple[str, int, str]] = []
        if req.max_results <= 0:
            return hits
        for i in range(0, len(req.paths), TEXT_BATCH):
            chunk = req.paths[i : i + TEXT_BATCH]
            need = [p for p in chunk if p not in self.texts]
            loaded: dict[str, str] = reader.read(need) if need else {}
            for p, t in loaded.items():
                if self.chars + len(t) <= req.cache_limit:
                    self.texts[p] = t
                    self.chars += len(t)
            for path in chunk:
                text = self.texts.get(path) or loaded.get(path)
                if text is None or (req.literal and req.literal not in text):
                    continue
                grep_text(rx, req.literal, path, text, hits, req.max_results)
                if len(hits) >= req.max_results:
                    return hits
        return hits


def _child_main(conn: Connection) -> None:
    """Serve greps until the server closes the pipe (or dies: the pipe closes then too).

    No ``PR_SET_PDEATHSIG`` here: it fires when the *thread* that started the
    helper ends, and any server thread may be the first to grep. A helper busy
    in a regex when the server dies is ended by its own alarm instead.
    """
    state = _Child()
    while True:
        try:
            req, timeout = conn.recv()
        except (EOFError, OSError):
            return
        signal.alarm(int(timeout) + ALARM_GRACE)
        try:
            conn.send(("ok", state.grep(req)))
        except re.error as exc:
            conn.send(("regex", str(exc)))
        except Exception as exc:  # the store's errors vary; the helper must keep serving
            state = _Child()
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            signal.alarm(0)


class GrepWorker:
    """A killable helper process for one repository's greps; thread-safe, started lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self.synced_version = -1

    def _start(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop_locked()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child_main, args=(child,), name="rlm-grep", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.synced_version = -1
        return parent

    def run(self, req: GrepRequest, timeout: float) -> list[tuple[str, int, str]]:
        """Run ``req`` in the helper; :class:`GrepTimeout` after ``timeout`` seconds (helper killed)."""
        with self._lock:
            conn = self._start()
            if self.synced_version < 0:
                req = GrepRequest(**{**_fields(req), "changed": None})
            try:
                conn.send((req, timeout))
                ready = conn.poll(timeout)
                reply = conn.recv() if ready else None
            except (EOFError, OSError) as exc:
                self._stop_locked()
                raise RuntimeError(f"the grep helper died: {exc}") from None
            if reply is None:
                self._stop_locked()
                raise GrepTimeout(f"the search ran longer than {timeout:g}s")
            self.synced_version = req.version
        kind, payload = reply
        if kind == "ok":
            hits: list[tuple[str, int, str]] = payload
            return hits
        if kind == "regex":
            raise re.error(payload)
        self.synced_version = -1
        raise RuntimeError(payload)

    def _stop_locked(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.synced_version = -1
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)

    def close(self) -> None:
        with self._lock:
            self._stop_locked()


def _fields(req: GrepRequest) -> dict[str, Any]:
    return {name: getattr(req, name) for name in GrepRequest.__slots__}
