"""What the loopback server answers and records: scripted replies and received requests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_MODEL", "RecordedRequest", "Reply", "Responder", "as_reply"]

DEFAULT_MODEL = "loopback-model"
"""The model the loopback server reports when a request names none."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    Attributes:
        text: the assistant text for a 200; the error message otherwise.
        status: HTTP status.  Non-200 statuses get an OpenAI-style error body
            ``{"error": {"message": text, ...}}`` unless ``body`` is given.
        headers: extra response headers (``Retry-After`` and the like).
        delay: seconds to wait before answering; the wait ends early if the
            client disconnects, which the server records.
        usage: ``None`` computes usage from the text, a dict is sent as is,
            ``"omit"`` leaves the ``usage`` key out.
        body: a raw body sent instead of the generated JSON (e.g. garbage).
        hang: never answer; wait until the client disconnects or the server
            stops.
        finish_reason: the choice's ``finish_reason``.
        content_null: send ``"content": null`` instead of ``text``.
        cut_after: send the status line, the headers (with the full
            ``Content-Length``) and only this many bytes of the body, then
            close: a connection lost mid-response.
        drop: close the connection without answering at all.
    """

    text: str = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: Mapping[str, Any] | Literal["omit"] | None = None
    body: str | bytes | None = None
    hang: bool = False
    finish_reason: str = "stop"
    content_null: bool = False
    cut_after: int | None = None
    drop: bool = False

    @classmethod
    def error(cls, status: int, message: str = "", **headers: str) -> Reply:
        """An error reply; keyword arguments become headers (``_`` → ``-``)."""
        return cls(
            text=message or f"loopback error {status}",
            status=status,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )


Responder = Callable[[dict[str, Any]], "str | Reply"]
"""Answers a chat completion request (its parsed JSON body) with assistant text or a :class:`Reply`."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received.

    Attributes:
        method: the HTTP method (``GET`` or ``POST``).
        path: the request path, e.g. ``/v1/chat/completions``.
        headers: request headers, names lower-cased.
        json: the parsed body; ``None`` when it was empty or not JSON.
        received_at: when it arrived, on the :func:`time.monotonic` clock.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    received_at: float


def as_reply(reply: str | Reply) -> Reply:
    """``reply`` as a :class:`Reply`; a string is a 200 with that assistant text.

    Raises:
        TypeError: ``reply`` is neither a string nor a :class:`Reply`.
    """
    if isinstance(reply, Reply):
        return reply
    if isinstance(reply, str):
        return Reply(text=reply)
    raise TypeError(f"a scripted reply must be str or Reply, not {type(reply).__name__}")
