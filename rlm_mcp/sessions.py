"""Sessions: server-minted handles for state kept across calls (a REPL and a history).

MCP keeps no protocol sessions, and one server serves many callers, so state
that outlives a call travels as an explicit handle: ``rlm_query`` and
``rlm_exec`` return one, and passing it back continues that session. No handle
means a fresh, private session; a caller can reach only the sessions whose
handles it holds. A handle is 32 random bytes (``secrets``), so it cannot be
guessed.

Lifetime: a session unused for ``ttl_seconds`` expires, and beyond
``max_sessions`` (or ``max_bytes`` of history and context text) the least
recently used idle sessions are evicted. A background thread stops expired
REPLs even when no call comes. Using an expired or evicted handle raises
:class:`~rlm_mcp.errors.SessionNotFound` with kind ``session_expired`` and
says how to start anew; a handle never issued here is ``unknown_session``.
Never a silent fresh REPL.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_mcp.config import SandboxSettings, SessionSettings
from rlm_mcp.engine.conversation import Conversation
from rlm_mcp.engine.replapi import LLM_FUNCTIONS, repo_functions, session_config, start_session
from rlm_mcp.engine.result import EvidenceLog
from rlm_mcp.errors import BackendNotConfigured, ConfigError, SessionNotFound
from rlm_mcp.index import Repository
from sandbox import Session

__all__ = ["HANDLE_PREFIX", "ChatSession", "SessionStore", "exec_repl"]

log = logging.getLogger(__name__)

HANDLE_PREFIX = "rlms_"
_TOMBSTONES = 10_000
"""How many ended handles are remembered, to tell "expired" from "never issued"."""


@dataclass(eq=False)
class ChatSession:
    """One caller's session: its conversation (REPL and history) and its repository."""

    handle: str
    repo: str | None
    conversation: Conversation = field(default_factory=Conversation)
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Calls in progress or waiting on this session (never evicted while above 0)."""


class SessionStore:
    """The live sessions by handle, with their expiry and eviction."""

    def __init__(self, settings: SessionSettings) -> None:
        if settings.ttl_seconds <= 0 or settings.max_sessions < 1 or settings.max_bytes < 1:
            raise ConfigError("sessions need ttl_seconds > 0, max_sessions >= 1 and max_bytes >= 1")
        self.settings = settings
        self._live: OrderedDict[str, ChatSession] = OrderedDict()
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- handles ------------------------------------------------------------------------

    def create(self, repo: str | None) -> ChatSession:
        """A fresh private session, in use by the caller (``users`` is 1: release it after).

        Evicts idle sessions beyond the limits; never the new one, which is
        counted as in use before the lock is let go.
        """
        handle = HANDLE_PREFIX + secrets.token_urlsafe(32)
        session = ChatSession(handle, repo, users=1)
        with self._lock:
            self._live[handle] = session
            doomed = self._over_limits_locked()
        self._close_all(doomed)
        return session

    def get(self, handle: object) -> ChatSession:
        """The live session ``handle`` names, in use by the caller (release it after).

        Raises:
            SessionNotFound: the handle expired, was evicted or closed
                (``session_expired``), or was never issued (``unknown_session``).
        """
        if not isinstance(handle, str) or not handle.strip():
            raise SessionNotFound(
                "the session handle must be a non-empty string from an earlier result",
                kind="unknown_session",
            )
        self.sweep()
        with self._lock:
            session = self._live.get(handle)
            if session is not None:
                session.last_used = time.monotonic()
                session.users += 1
                self._live.move_to_end(handle)
                return session
            why = self._ended.get(handle)
        if why is not None:
            raise SessionNotFound(
                f"the session {_short(handle)} has ended ({why}); its REPL variables are gone. "
                "Omit the session handle to start a new session",
                kind="session_expired",
            )
        raise SessionNotFound(
            f"no session {_short(handle)} was issued by this server (it may have restarted); "
            "omit the session handle to start a new session",
            kind="unknown_session",
        )

    def release(self, session: ChatSession) -> None:
        """The caller is done with ``session`` (from :meth:`create` or :meth:`get`)."""
        with self._lock:
            session.users -= 1
            session.last_used = time.monotonic()

    def close(self, handle: str, why: str = "closed by the caller") -> bool:
        with self._lock:
            session = self._live.pop(handle, None)
            if session is not None:
                self._bury_locked(handle, why)
        if session is None:
            return False
        self._close_all([session])
        return True

    def close_repo(self, repo: str) -> None:
        """End every session on ``repo`` (it is unloaded or replaced)."""
        with self._lock:
            doomed = [s for s in self._live.values() if s.repo == repo]
            for s in doomed:
                del self._live[s.handle]
                self._bury_locked(s.handle, f"the repository {repo!r} was unloaded")
        self._close_all(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    # -- expiry -------------------------------------------------------------------------

    def sweep(self) -> int:
        """End the sessions past their TTL or beyond the limits; returns how many."""
        with self._lock:
            doomed = self._expired_locked() + self._over_limits_locked()
        self._close_all(doomed)
        return len(doomed)

    def _expired_locked(self) -> list[ChatSession]:
        now = time.monotonic()
        ttl = self.settings.ttl_seconds
        doomed = [s for s in self._live.values() if s.users == 0 and now - s.last_used >= ttl]
        for s in doomed:
            del self._live[s.handle]
            self._bury_locked(s.handle, f"unused for over {ttl:g} s")
        return doomed

    def _over_limits_locked(self) -> list[ChatSession]:
        doomed: list[ChatSession] = []
        s = self.settings
        idle = [x for x in self._live.values() if x.users == 0]  # oldest first
        while len(self._live) > s.max_sessions and idle:
            victim = idle.pop(0)
            del self._live[victim.handle]
            self._bury_locked(victim.handle, f"evicted: more than {s.max_sessions} sessions")
            doomed.append(victim)
        held = sum(x.conversation.size_bytes() for x in self._live.values())
        while held > s.max_bytes and idle:
            victim = idle.pop(0)
            held -= victim.conversation.size_bytes()
            del self._live[victim.handle]
            self._bury_locked(victim.handle, f"evicted: sessions held over {s.max_bytes} bytes")
            doomed.append(victim)
        return doomed

    def _bury_locked(self, handle: str, why: str) -> None:
        self._ended[handle] = why
        while len(self._ended) > _TOMBSTONES:
            self._ended.popitem(last=False)

    @staticmethod
    def _close_all(sessions: list[ChatSession]) -> None:
        for s in sessions:
            try:
                s.conversation.close()
            except Exception:
                log.exception("closing session %s failed", _short(s.handle))

    def start_sweeper(self) -> None:
        """Stop expired REPLs in the background, even when no call comes."""
        if self._sweeper is not None:
            return
        period = min(30.0, max(0.05, self.settings.ttl_seconds / 4))

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.sweep()
                except Exception:
                    log.exception("sweeping sessions failed")

        self._sweeper = threading.Thread(target=loop, name="rlm-sessions", daemon=True)
        self._sweeper.start()

    def close_all(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None
        with self._lock:
            doomed = list(self._live.values())
            for s in doomed:
                self._bury_locked(s.handle, "the server closed it")
            self._live.clear()
        self._close_all(doomed)


def exec_repl(
    chat: ChatSession, repo: Repository, sandbox: SandboxSettings, exec_timeout: float
) -> Session:
    """The session's REPL bound for ``rlm_exec``: the index, no LLM; started on first use.

    Blocking. A REPL a query started is rebound: its variables stay.
    """
    conv = chat.conversation
    host: dict[str, Callable[..., Any]] = dict(repo_functions(repo, EvidenceLog()))
    host.update(dict.fromkeys(LLM_FUNCTIONS, _no_llm))
    if conv.session is not None:
        conv.session.rebind(host)
        return conv.session
    config = session_config(
        sandbox,
        repo.root,
        exec_timeout=exec_timeout,
        readable_paths=(conv.directory,),
        lazy_text={"context": conv.context_path},
    )
    conv.session = start_session(config, host)
    return conv.session


def _no_llm(*args: Any, **kwargs: Any) -> Any:
    raise BackendNotConfigured(
        "rlm_exec runs without an LLM: you are the root model, so read the data and reason "
        "about it yourself (or use rlm_query for the server's own model)"
    )


def _short(handle: str) -> str:
    """A handle as messages show it: enough to recognise, not enough to use."""
    return handle[: len(HANDLE_PREFIX) + 6] + "..."
