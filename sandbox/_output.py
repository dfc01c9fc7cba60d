"""Per-cell capture of what model code prints, bounded so a loop of prints cannot flood the host.

``sys.stdout`` and ``sys.stderr`` are replaced by ``Stream`` objects that ask the worker which
capture, if any, the writing thread belongs to: the main thread and threads started by the
running cell write into the cell's capture; threads left over from earlier cells write nowhere.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable


class Capture:
    """stdout and stderr text of one cell, each kept up to ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.kept = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            room = self.limit - self.kept[stream]
            if room > 0:
                piece = text[:room]
                self.parts[stream].append(piece)
                self.kept[stream] += len(piece)
            self.dropped[stream] += max(0, len(text) - max(room, 0))

    def text(self, stream: str) -> str:
        out = "".join(self.parts[stream])
        if self.dropped[stream]:
            out += (
                f"\n[... output truncated: {self.dropped[stream]} more characters "
                f"not shown (limit {self.limit}) ...]"
            )
        return out


class Stream(io.TextIOBase):
    """A text stream that routes each write to the capture ``current`` names, or drops it."""

    def __init__(self, current: Callable[[], Capture | None], name: str) -> None:
        self._current = current
        self._name = name

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        capture = self._current()
        if capture is not None:
            capture.write(self._name, s)
        return len(s)

    def flush(self) -> None:
        return None
