"""W3C trace context from a request's ``_meta``, carried into log lines and trajectories.

A client that traces (the SDK's OpenTelemetry support injects ``traceparent`` and
``tracestate`` into each request's ``_meta``) can find our side of a request:
while a tool call runs, :data:`current` holds its trace context, every log line
written meanwhile (on any thread the call starts: ``contextvars`` follow
``anyio.to_thread``) carries ``trace_id`` and ``span_id``, and a query's
trajectory records it in its ``start`` event. ``--log-format json`` writes one
JSON object per log line for log shippers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "TraceContext",
    "TraceFilter",
    "bound",
    "current",
    "from_meta",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MAX_TRACESTATE = 512


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A valid W3C ``traceparent`` (and the ``tracestate`` that came with it)."""

    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent.split("-")[1]

    @property
    def span_id(self) -> str:
        return self.traceparent.split("-")[2]

    def as_dict(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent, "trace_id": self.trace_id, "span_id": self.span_id}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "rlm_trace", default=None
)


def current() -> TraceContext | None:
    """The trace context of the request being served, if it came with one."""
    return _current.get()


def from_meta(meta: Mapping[str, Any] | None) -> TraceContext | None:
    """The trace context in a request's ``_meta``; None when absent or malformed (W3C:
    version ``ff`` and all-zero ids are invalid)."""
    if not meta:
        return None
    raw = meta.get("traceparent")
    if not isinstance(raw, str):
        return None
    m = _TRACEPARENT.match(raw.strip().lower())
    if m is None or m.group(1) == "ff" or set(m.group(2)) == {"0"} or set(m.group(3)) == {"0"}:
        return None
    state = meta.get("tracestate")
    if not isinstance(state, str) or len(state) > MAX_TRACESTATE:
        state = None
    return TraceContext(m.group(0), state)


@contextmanager
def bound(trace: TraceContext | None) -> Iterator[None]:
    """Make ``trace`` the :func:`current` one for the block."""
    token = _current.set(trace)
    try:
        yield
    finally:
        _current.reset(token)


class TraceFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (empty without a trace) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = _current.get()
        record.trace_id = trace.trace_id if trace else ""
        record.span_id = trace.span_id if trace else ""
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, then ``[trace=... span=...]`` when a trace is set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            text += f" [trace={trace_id} span={getattr(record, 'span_id', '')}]"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the trace
    ids when set, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            out["trace_id"] = trace_id
            out["span_id"] = getattr(record, "span_id", "")
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)
