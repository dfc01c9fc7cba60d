"""An in-process test double for :class:`~rlm_mcp.backends.base.LLMBackend`.

Engine tests that do not care about HTTP script the model's answers here:
a list of replies consumed in order, or a function of the request.  Every
request is recorded so tests can assert on prompts.  For tests that need the
HTTP path, use :class:`rlm_mcp.testing.LoopbackLLMServer` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeAlias

import anyio

from rlm_mcp.backends.base import (
    Attempt,
    Completion,
    CompletionRequest,
    TokenUsage,
    estimate_tokens,
)
from rlm_mcp.errors import BackendError, BackendResponseError

__all__ = ["ScriptedBackend", "ScriptedReply"]

ScriptedReply: TypeAlias = str | BaseException | Completion
"""A reply: assistant text, an exception to raise, or a full :class:`Completion`."""


class ScriptedBackend:
    """Answers from a script instead of a model.

    Args:
        script: replies consumed in order, or a callable
            ``(request) -> str | Exception | Completion`` called for each request.
            An exception (instance) is raised from :meth:`complete`.
        model: the default model name reported.
        usage: fixed usage for every text reply; by default usage is
            estimated from the text (``estimated=True``).
        delay: seconds each call waits before answering, to let tests
            observe concurrency or cancel in-flight calls.

    Each call is one attempt, reported to ``request.on_attempt`` like the
    HTTP backend's: ``ok``, ``failed`` (a scripted exception) or
    ``cancelled`` (the caller gave up during ``delay``).

    Safe to share between tasks and threads: the script position and
    :attr:`history` are guarded by a lock.  When a list script runs out,
    :meth:`complete` raises :class:`~rlm_mcp.errors.BackendResponseError`.
    """

    def __init__(
        self,
        script: Iterable[ScriptedReply] | Callable[[CompletionRequest], ScriptedReply],
        *,
        model: str = "scripted",
        usage: TokenUsage | None = None,
        delay: float = 0.0,
    ) -> None:
        self.model = model
        self.usage = usage
        self.delay = delay
        self._lock = threading.Lock()
        self._history: list[CompletionRequest] = []
        self._closed = False
        self._responder: Callable[[CompletionRequest], ScriptedReply] | None
        self._replies: list[ScriptedReply]
        if callable(script):
            self._responder = script
            self._replies = []
        else:
            self._responder = None
            self._replies = list(script)
        self._next = 0

    @property
    def history(self) -> list[CompletionRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._history)

    @property
    def calls(self) -> int:
        """How many requests were received."""
        with self._lock:
            return len(self._history)

    @property
    def remaining(self) -> int:
        """Unused replies of a list script (0 for a callable script)."""
        with self._lock:
            return len(self._replies) - self._next

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def push(self, *replies: ScriptedReply) -> None:
        """Append replies to a list script.

        Raises:
            TypeError: the script is a callable.
        """
        with self._lock:
            if self._responder is not None:
                raise TypeError("cannot push replies onto a callable script")
            self._replies.extend(replies)

    async def complete(self, request: CompletionRequest) -> Completion:
        """Record ``request`` and answer it with the next scripted reply.

        Returns:
            The reply as a :class:`~rlm_mcp.backends.base.Completion`: a text
            reply gets ``usage`` (or an estimate) and ``finish_reason="stop"``.

        Raises:
            BackendError: the backend is closed.
            BackendResponseError: a list script ran out.
            BaseException: the scripted exception, as is.
            TypeError: a reply is not a string, an exception or a ``Completion``.
        """
        started = time.monotonic()
        if self._closed:
            raise BackendError("scripted backend is closed")
        with self._lock:
            self._history.append(request)
            index = len(self._history)
            if self._responder is None:
                if self._next >= len(self._replies):
                    raise BackendResponseError(
                        f"scripted backend: script exhausted after {len(self._replies)} "
                        f"replies (request #{index})"
                    )
                reply: ScriptedReply | None = self._replies[self._next]
                self._next += 1
            else:
                reply = None
        if reply is None:
            assert self._responder is not None
            reply = self._responder(request)
        model = request.model or self.model
        report = request.on_attempt
        if self.delay > 0:
            try:
                await anyio.sleep(self.delay)
            except anyio.get_cancelled_exc_class():
                if report is not None:
                    report(Attempt(model, "cancelled"))
                raise
        if isinstance(reply, BaseException):
            if report is not None and isinstance(reply, Exception):
                kind = reply.kind if isinstance(reply, BackendError) else None
                report(Attempt(model, "failed", kind=kind))
            raise reply
        if isinstance(reply, Completion):
            if report is not None:
                report(Attempt(reply.model, "ok"))
            return reply
        if not isinstance(reply, str):
            raise TypeError(f"scripted reply must be str, exception or Completion, not {reply!r}")
        usage = self.usage or TokenUsage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=estimate_tokens(reply),
            estimated=True,
        )
        if report is not None:
            report(Attempt(model, "ok"))
        return Completion(
            text=reply,
            model=model,
            usage=usage,
            finish_reason="stop",
            latency_seconds=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        """Close the backend: later calls raise :class:`~rlm_mcp.errors.BackendError`."""
        self._closed = True
