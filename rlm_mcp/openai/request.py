"""A chat completion request, read and checked field by field before anything runs.

Every field a client sends is type-checked here; a bad one is an :class:`ApiError`
(HTTP 400) naming it in ``param``. What the request means for the engine:

* the last message, which must be the user's, is the question;
* every message before it becomes the REPL's ``context``, rendered as a readable
  transcript (:func:`transcript`), never the root model's window;
* the ``rlm`` object (``extra_body={"rlm": {...}}`` in the ``openai`` client) may
  name a ``repository``, per-request ``limits`` and a ``session`` to continue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlm_mcp.engine.calls import Sampling

__all__ = ["QUESTION_CHARS", "ApiError", "ChatRequest", "parse_chat_request", "transcript"]

QUESTION_CHARS = 8_000
"""A last user message longer than this goes to ``context`` too; the root sees its ends."""
QUESTION_EDGE = 1_500
"""How many characters of each end of a long question the root sees."""

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
RLM_FIELDS = frozenset({"repository", "limits", "session"})
MAX_TEMPERATURE = 2.0


class ApiError(Exception):
    """An OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``.

    Attributes:
        status: the HTTP status.
        type: ``invalid_request_error``, ``authentication_error``, ``permission_error``,
            ``rate_limit_error`` or ``server_error``.
        code: a word a client can branch on (``model_not_found``, ``session_expired``...).
        param: the request field at fault, when there is one.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _bad(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What one ``POST /v1/chat/completions`` asks for, checked.

    Attributes:
        model: the model id as sent (``rlm:<root model>`` or the bare name).
        question: the last (user) message's text.
        earlier: the messages before it, in order.
        max_tokens: bound on the final answer (``max_completion_tokens`` or
            ``max_tokens``, the smaller when both are sent).
        repository: ``rlm.repository``, a path inside the allowed roots.
        limits: ``rlm.limits``, passed to the engine (which can only tighten its own).
        session: ``rlm.session``, a handle from an earlier response.
    """

    model: str
    question: str
    earlier: tuple[Message, ...] = ()
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    repository: str | None = None
    limits: dict[str, Any] | None = None
    session: str | None = None


def _text(content: Any, param: str) -> str:
    """A message's content as text: a string, null, or a list of ``text`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for i, part in enumerate(content):
            where = f"{param}[{i}]"
            if not isinstance(part, dict):
                raise _bad(f"{where} must be an object", where, "invalid_type")
            kind = part.get("type")
            if kind not in ("text", "input_text"):
                raise _bad(
                    f"{where}.type {kind!r} is not supported: only text parts are",
                    f"{where}.type",
                    "unsupported_content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"{where}.text must be a string", f"{where}.text", "invalid_type")
            parts.append(text)
        return "\n".join(parts)
    raise _bad(f"{param} must be a string, null or a list of text parts", param, "invalid_type")


def _message(raw: Any, i: int) -> Message:
    param = f"messages[{i}]"
    if not isinstance(raw, dict):
        raise _bad(f"{param} must be an object", param, "invalid_type")
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise _bad(
            f"{param}.role must be one of {', '.join(sorted(ROLES))}",
            f"{param}.role",
            "invalid_type" if not isinstance(role, str) else "invalid_value",
        )
    text = _text(raw.get("content"), f"{param}.content")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise _bad(f"{param}.name must be a string", f"{param}.name", "invalid_type")
    calls = raw.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad(f"{param}.tool_calls must be a list", f"{param}.tool_calls", "invalid_type")
        text = "\n".join(p for p in (text, "tool_calls: " + json.dumps(calls)) if p)
    return Message(role, text, name or None)


def _optional(
    body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str, where: str = ""
) -> Any:
    """``body[key]`` when present and of ``kind`` (a bool is never an int here); else 400."""
    value = body.get(key)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _bad(f"{where}{key} must be {what}", f"{where}{key}", "invalid_type")
    return value


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = _optional(body, key, int, "a positive integer")
    if value is not None and value < 1:
        raise _bad(f"{key} must be a positive integer", key)
    return value  # type: ignore[no-any-return]


def _sampling(body: Mapping[str, Any]) -> Sampling:
    temperature = _optional(body, "temperature", (int, float), "a number")
    if temperature is not None:
        temperature = float(temperature)
        if not math.isfinite(temperature) or not 0 <= temperature <= MAX_TEMPERATURE:
            raise _bad(f"temperature must be between 0 and {MAX_TEMPERATURE:g}", "temperature")
    seed = _optional(body, "seed", int, "an integer")
    return Sampling(temperature=temperature, seed=seed)


def _rlm(body: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None, str | None]:
    raw = body.get("rlm")
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        raise _bad("rlm must be an object", "rlm", "invalid_type")
    unknown = sorted(set(raw) - RLM_FIELDS)
    if unknown:
        raise _bad(
            f"unknown field(s) in rlm: {', '.join(unknown)} (known: "
            f"{', '.join(sorted(RLM_FIELDS))})",
            f"rlm.{unknown[0]}",
            "unknown_parameter",
        )
    repository = _optional(raw, "repository", str, "a string (a path)", "rlm.")
    if repository is not None and not repository.strip():
        raise _bad("rlm.repository is empty", "rlm.repository")
    limits = _optional(raw, "limits", dict, "an object", "rlm.")
    session = _optional(raw, "session", str, "a string (a handle from an earlier response)", "rlm.")
    if session is not None and not session.strip():
        raise _bad("rlm.session is empty", "rlm.session")
    return repository, limits, session


def parse_chat_request(body: Any, *, max_messages: int) -> ChatRequest:
    """Check a decoded JSON body; raises :class:`ApiError` (400) naming the bad field."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", None, "invalid_type")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model is required: a string (see GET /v1/models)", "model", "invalid_type")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("messages must be a non-empty list", "messages", "invalid_type")
    if len(raw_messages) > max_messages:
        raise _bad(
            f"too many messages: {len(raw_messages)} (at most {max_messages})",
            "messages",
            "too_many_messages",
        )
    messages = [_message(m, i) for i, m in enumerate(raw_messages)]
    last = messages[-1]
    if last.role != "user" or not last.text.strip():
        raise _bad(
            "the last message must be the user's question (a non-empty user message)",
            f"messages[{len(messages) - 1}]",
            "no_user_message",
        )
    n = _optional(body, "n", int, "an integer")
    if n is not None and n != 1:
        raise _bad("n must be 1: one answer per request", "n", "unsupported_value")
    stream = _optional(body, "stream", bool, "a boolean") or False
    options = _optional(body, "stream_options", dict, "an object") or {}
    include_usage = (
        _optional(options, "include_usage", bool, "a boolean", "stream_options.") or False
    )
    bounds = [b for b in (_positive_int(body, "max_completion_tokens"),) if b is not None]
    bounds += [b for b in (_positive_int(body, "max_tokens"),) if b is not None]
    repository, limits, session = _rlm(body)
    question, earlier = last.text, tuple(messages[:-1])
    if len(question) > QUESTION_CHARS:
        # A document pasted with its question in one message must not reach the root's
        # window either: the whole message joins the context, the root sees its two ends.
        earlier = tuple(messages)
        question = (
            f"{question[:QUESTION_EDGE]}\n[... the whole question is {len(question):,} characters: "
            "it is the last [user] block of `context` ...]\n"
            f"{question[-QUESTION_EDGE:]}"
        )
    return ChatRequest(
        model=model,
        question=question,
        earlier=earlier,
        stream=stream,
        include_usage=include_usage,
        max_tokens=min(bounds) if bounds else None,
        sampling=_sampling(body),
        repository=repository,
        limits=limits,
        session=session,
    )


def transcript(messages: tuple[Message, ...]) -> str:
    """The messages as a readable transcript: ``[system]\\n...\\n\\n[user]\\n...``."""
    blocks = []
    for m in messages:
        head = f"[{m.role} name={m.name}]" if m.name else f"[{m.role}]"
        blocks.append(f"{head}\n{m.text}")
    return "\n\n".join(blocks)
