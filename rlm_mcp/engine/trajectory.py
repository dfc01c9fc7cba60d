"""Trajectories: every step of a query written as JSON Lines, and read back.

A trajectory is the audit trail of a query: the root model's replies, each
code block with its output, every sub-call with prompt and answer. It is the
first thing to read when an answer is wrong or a query ran away.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

__all__ = ["TrajectoryWriter", "format_trajectory", "read_trajectory"]

_MAX_FIELD = 50_000


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD:
        return value[:_MAX_FIELD] + f"... [{len(value) - _MAX_FIELD} more characters]"
    return value


class TrajectoryWriter:
    """Appends events to ``<dir>/<timestamp>-<id>.jsonl``; thread-safe; a no-op without a dir."""

    def __init__(self, directory: Path | None) -> None:
        self.path: Path | None = None
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self.path = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"event": event, "t": round(time.time(), 3)}
        record.update({k: _clip(v) for k, v in fields.items()})
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_trajectory(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the events of a trajectory file; a torn last line (a crash) is skipped."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + ln for ln in text.rstrip().splitlines())


def format_trajectory(events: Iterator[dict[str, Any]], *, full: bool = False) -> str:
    """Render a trajectory for a terminal: turns, code, outputs, sub-calls, the result."""
    limit = None if full else 1_500
    out: list[str] = []

    def cut(text: Any) -> str:
        s = str(text or "")
        return (
            s if limit is None or len(s) <= limit else s[:limit] + f" ... [+{len(s) - limit} chars]"
        )

    for ev in events:
        kind = ev.get("event")
        pad = "  " * int(ev.get("depth", 0) or 0)
        if kind == "start":
            out.append(f"{pad}# question (depth {ev.get('depth', 0)}): {ev.get('question')}")
            if ev.get("limits"):
                out.append(f"{pad}  limits: {json.dumps(ev['limits'])}")
        elif kind == "root_reply":
            out.append(
                f"{pad}## turn {ev.get('iteration')} — model reply ({ev.get('output_tokens', '?')} tokens)"
            )
            out.append(_indent(cut(ev.get("reply")), pad + "    "))
        elif kind == "exec":
            out.append(f"{pad}  ▶ code ({ev.get('duration', 0):.2f}s)")
            out.append(_indent(cut(ev.get("code")), pad + "    "))
            body = "".join(str(ev.get(k) or "") for k in ("stdout", "stderr", "error", "value"))
            out.append(f"{pad}  ◀ output")
            out.append(_indent(cut(body) or "(nothing)", pad + "    "))
        elif kind == "sub_call":
            tag = " (cached)" if ev.get("cached") else ""
            out.append(
                f"{pad}  ↳ llm_query{tag} [{ev.get('model')}]: {cut(ev.get('prompt'))[:200]!r}"
            )
            out.append(f"{pad}    = {cut(ev.get('answer'))[:300]!r}")
        elif kind == "note":
            out.append(f"{pad}  ! {ev.get('message')}")
        elif kind == "end":
            out.append(
                f"{pad}# result: status={ev.get('status')} limit={ev.get('limit')} "
                f"iterations={ev.get('iterations')} usage={json.dumps(ev.get('usage', {}))}"
            )
            out.append(_indent(cut(ev.get("answer")), pad + "    "))
    return "\n".join(out) + "\n"
