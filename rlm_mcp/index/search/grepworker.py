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
(:meth:`~rlm_mcp.index.store.base.IndexStore.reader_spec`), so it needs no SQL of
its own and works with any store.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

__all__ = [
    "GrepInterrupted",
    "GrepRequest",
    "GrepTimeout",
    "GrepWorker",
    "Hit",
    "clip_text",
    "matching_lines",
]

Hit = tuple[str, int, str, list[str], list[str]]
"""path, line, text, the lines before, the lines after."""
HIT_TEXT_CHARS = 300
ALARM_GRACE = 5
"""Seconds past the server's own timeout after which a helper's alarm ends it (default action)."""
TEXT_BATCH = 500


class GrepTimeout(Exception):
    """The pattern ran past its time limit; the helper was killed."""


class GrepInterrupted(Exception):
    """The caller interrupted the search (Ctrl-C); the helper was killed."""


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
    offset: int = 0
    context: int = 0
    count: bool = False
    count_limit: int = 100_000
    lines: Mapping[str, Sequence[int]] | None = None
    """Per path, the only line numbers that can match (ripgrep's); other paths are scanned."""


def matching_lines(rx: re.Pattern[str], lit: str, text: str) -> Iterator[tuple[int, int, int]]:
    """``(line number, start, end)`` of each line of ``text`` that ``rx`` matches, in order.

    With a required literal ``lit``, ``str.find`` picks candidate lines and the
    regex checks only those.
    """
    line_no, line_pos, pos, n = 1, 0, 0, len(text)
    while pos < n:  # no phantom line after a final newline, none in an empty file
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
        yield line_no, ls, le
        pos = le + 1


def hinted_lines(
    rx: re.Pattern[str], lit: str, text: str, numbers: Sequence[int]
) -> Iterator[tuple[int, int, int]]:
    """:func:`matching_lines` when only the lines ``numbers`` can be hits.

    ``numbers`` (ascending, 1-based) must include every line holding a match that
    ends within it, as ripgrep's lines for a relaxed regex do; any other line is
    skipped by :func:`matching_lines` too. Each hinted line gets the very test
    :func:`matching_lines` gives it: the leftmost match from the line's start
    (which does not depend on where the scan started) must start in the line,
    and end in it, or the line alone must match; with a literal, the line must
    hold it and match alone. Only a lookahead can see past the line, so only
    then does the leftmost search from the line's start (which may run to the
    end of the text) need to run.
    """
    n = len(text)
    ahead = "(?=" in rx.pattern or "(?!" in rx.pattern
    # Line k starts after the k-1 lines before it and their newlines (split and
    # accumulate run in C; finding each line's start with str.find did not).
    lengths = list(map(len, text.split("\n")))
    ends = list(itertools.accumulate(lengths))
    for line_no in numbers:
        if line_no > len(lengths):
            return
        le = ends[line_no - 1] + line_no - 1
        ls = le - lengths[line_no - 1]
        if ls >= n:
            return
        if lit:
            if text.find(lit, ls, le) >= 0 and rx.search(text, ls, le) is not None:
                yield line_no, ls, le
            continue
        if rx.search(text, ls, le) is not None:
            yield line_no, ls, le
            continue
        if not ahead:
            continue  # without a lookahead, a match that ends in the line also matches alone
        m = rx.search(text, ls)
        if m is None:
            return
        if m.start() <= le and m.end() <= le:
            yield line_no, ls, le


def clip_text(line: str) -> str:
    line = line.rstrip("\r")
    return line if len(line) <= HIT_TEXT_CHARS else line[:HIT_TEXT_CHARS] + "…"


def _around(text: str, ls: int, le: int, context: int) -> tuple[list[str], list[str]]:
    """Up to ``context`` lines before and after the line spanning ``ls``..``le``."""
    before: list[str] = []
    pos = ls
    while len(before) < context and pos > 0:
        start = text.rfind("\n", 0, pos - 1) + 1
        before.append(clip_text(text[start : pos - 1]))
        pos = start
    before.reverse()
    after: list[str] = []
    pos = le
    while len(after) < context and pos < len(text):
        end = text.find("\n", pos + 1)
        end = len(text) if end < 0 else end
        if pos + 1 > len(text):
            break
        after.append(clip_text(text[pos + 1 : end]))
        pos = end
    return before, after


class _Child:
    """The helper's state: one database's texts (while they fit ``cache_limit``)."""

    def __init__(self) -> None:
        self.spec: tuple[str, str] | None = None
        self.reader: Any = None
        self.texts: dict[str, str] = {}
        self.chars = 0
        self.read_chars = 0
        """Characters the last grep read from the store (beyond the cache)."""

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

    def grep(self, req: GrepRequest) -> tuple[list[Hit], int, bool]:
        """The page of hits, how many matching lines were seen, and whether it stopped early."""
        reader = self._connect(req.reader)
        if req.changed is None:
            self._forget()
        else:
            for p in req.changed:
                old = self.texts.pop(p, None)
                if old is not None:
                    self.chars -= len(old)
        rx = re.compile(req.pattern, req.flags)
        self.read_chars = 0
        hits: list[Hit] = []
        seen = 0
        for i in range(0, len(req.paths), TEXT_BATCH):
            chunk = req.paths[i : i + TEXT_BATCH]
            need = [p for p in chunk if p not in self.texts]
            loaded: dict[str, str] = reader.read(need) if need else {}
            self.read_chars += sum(map(len, loaded.values()))
            for p, t in loaded.items():
                if self.chars + len(t) <= req.cache_limit:
                    self.texts[p] = t
                    self.chars += len(t)
            for path in chunk:
                text = self.texts.get(path)
                if text is None:
                    text = loaded.get(path)
                if text is None or (req.literal and req.literal not in text):
                    continue
                hint = req.lines.get(path) if req.lines is not None else None
                found = (
                    matching_lines(rx, req.literal, text)
                    if hint is None
                    else hinted_lines(rx, req.literal, text, hint)
                )
                for line_no, ls, le in found:
                    seen += 1
                    if seen > req.offset and len(hits) < req.max_results:
                        before, after = (
                            _around(text, ls, le, req.context) if req.context else ([], [])
                        )
                        hits.append((path, line_no, clip_text(text[ls:le]), before, after))
                    if seen >= req.count_limit or (
                        len(hits) >= req.max_results
                        and seen >= req.offset + req.max_results
                        and not req.count
                    ):
                        return hits, seen, True
        return hits, seen, False


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
        del req
        if state.read_chars > TRIM_AFTER_CHARS:
            _give_back_memory()


TRIM_AFTER_CHARS = 256 << 20
"""A grep that read more text than this gives the freed heap back; after smaller ones the
next grep would only fault it in again (trimming after every grep, the monorepo benchmark's
literal greps ran 10-25% slower in one run)."""


def _give_back_memory() -> None:
    """Return the heap a grep freed to the system (glibc keeps it otherwise).

    A grep over tens of thousands of texts frees as much as it read, but glibc
    keeps the freed pages: the helper stayed at 244-293 MB after one such grep.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def serve_fd(fd: int) -> None:
    """The helper's entry point: serve greps on the socket ``fd`` until it closes.

    Ctrl-C reaches the whole process group; the server decides what it means (and
    kills this helper through :meth:`GrepWorker.interrupt`), so the helper ignores it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _child_main(Connection(fd))


class GrepWorker:
    """A killable helper process for one repository's greps; thread-safe, started lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._interrupted = False
        self.synced_version = -1

    def _start(self) -> Connection:
        """A fresh ``python -c`` child on one end of a socket pair.

        Not ``multiprocessing``'s spawn: that re-runs the caller's ``__main__``
        (a script without a main guard would run again in the helper). ``-P``: the
        working directory (often the repository searched) is not put on the module
        path, so a ``re.py`` or ``socket.py`` there is never imported.
        """
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        self._stop_locked()
        ours, theirs = socket.socketpair()
        code = f"from rlm_mcp.index.search.grepworker import serve_fd; serve_fd({theirs.fileno()})"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", code],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            theirs.close()
        self._proc, self._conn = proc, Connection(ours.detach())
        self.synced_version = -1
        return self._conn

    def start(self) -> None:
        """Start the helper now (it takes about 0.1 s), so the first :meth:`run` need not wait."""
        with self._lock:
            if not self._interrupted:
                self._start()

    def run(self, req: GrepRequest, timeout: float) -> tuple[list[Hit], int, bool]:
        """Run ``req`` in the helper; :class:`GrepTimeout` after ``timeout`` seconds (helper killed)."""
        with self._lock:
            if self._interrupted:
                raise GrepInterrupted("the search was interrupted")
            conn = self._start()
            if self.synced_version < 0:
                req = GrepRequest(**{**_fields(req), "changed": None})
            try:
                conn.send((req, timeout))
                ready = conn.poll(timeout)
                reply = conn.recv() if ready else None
            except (EOFError, OSError) as exc:
                self._stop_locked()
                if self._interrupted:
                    raise GrepInterrupted("the search was interrupted") from None
                raise RuntimeError(f"the grep helper died: {exc}") from None
            if reply is None:
                self._stop_locked()
                raise GrepTimeout(f"the search ran longer than {timeout:g}s")
            self.synced_version = req.version
        kind, payload = reply
        if kind == "ok":
            page: tuple[list[Hit], int, bool] = payload
            return page
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
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def close(self) -> None:
        with self._lock:
            self._stop_locked()

    def interrupt(self) -> None:
        """Kill the helper now, from any thread, without waiting for the grep it runs.

        The thread blocked in :meth:`run` gets :class:`GrepInterrupted` at once (the
        pipe closes), and so does every later call: a Ctrl-C is honoured in
        milliseconds, whatever the regex, instead of after :data:`GREP_TIMEOUT`.
        """
        self._interrupted = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)


def _fields(req: GrepRequest) -> dict[str, Any]:
    return {name: getattr(req, name) for name in GrepRequest.__slots__}
