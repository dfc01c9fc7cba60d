"""What a query's :class:`~rlm_mcp.engine.result.RLMResult` becomes on the wire.

:func:`outcome` decides once, for both the JSON and the streamed response, what the
client gets: the content and ``finish_reason`` (``stop``; ``length`` when
``max_tokens`` cut the answer or a guardrail ended the query, the content then
labelled as a partial answer), or an :class:`ApiError` (502 for a provider failure,
504 for the wall-clock limit with no answer, 500 for any other failure).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from rlm_mcp.backends.base import estimate_tokens
from rlm_mcp.engine.result import RLMResult
from rlm_mcp.openai.request import ApiError

__all__ = [
    "MODEL_PREFIX",
    "Outcome",
    "chunk",
    "completion",
    "completion_id",
    "outcome",
    "sse",
    "truncate",
    "usage",
]

MODEL_PREFIX = "rlm:"
_PROBE = 4096
CHARS_PER_TOKEN = _PROBE // estimate_tokens("x" * _PROBE)
"""The ratio :func:`~rlm_mcp.backends.base.estimate_tokens` counts by."""
WALL_LIMIT = "max_wall_seconds"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """``text`` cut to ``max_tokens`` estimated tokens; True when it was cut."""
    if max_tokens is None:
        return text, False
    keep = max_tokens * CHARS_PER_TOKEN
    while keep > 0 and estimate_tokens(text[:keep]) > max_tokens:
        keep -= 1
    return (text, False) if len(text) <= keep else (text[:keep], True)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The content and ``finish_reason`` a successful response carries."""

    content: str
    finish_reason: str


def outcome(result: RLMResult, max_tokens: int | None) -> Outcome:
    """The response for ``result``; raises :class:`ApiError` when it has none to give."""
    if result.status == "error":
        kind = result.error_kind
        message = result.error or "the query failed"
        if kind is not None:
            raise ApiError(502, f"the model provider failed ({kind}): {message}", code=kind)
        raise ApiError(500, f"the query failed: {message}", code="query_failed")
    content, finish = result.answer, "stop"
    if result.status == "limit_reached":
        limit = result.limit or "a limit"
        if not result.answer.strip():
            if limit == WALL_LIMIT:
                why = " while the provider was rate limiting" if result.error_kind else ""
                raise ApiError(
                    504,
                    f"the query reached max_wall_seconds{why} before any answer",
                    code=WALL_LIMIT,
                )
            content = f"[no answer: the query stopped at {limit} before any answer]"
        else:
            content = f"[partial answer: the query stopped at {limit}]\n\n{result.answer}"
        finish = "length"
    content, cut = truncate(content, max_tokens)
    return Outcome(content, "length" if cut else finish)


def usage(result: RLMResult) -> dict[str, int]:
    """Tokens summed over every root and sub call of the query."""
    prompt, done = result.usage.input_tokens, result.usage.output_tokens
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def extension(result: RLMResult) -> dict[str, Any]:
    """The ``rlm`` object: how the query ended, its citations, trajectory and session."""
    return {
        "status": result.status,
        "limit": result.limit,
        "error_kind": result.error_kind,
        "citations": [c.as_dict() for c in result.citations],
        "trajectory": result.trajectory.name if result.trajectory else None,
        "session": result.session,
    }


def completion(
    cid: str, model: str, created: int, result: RLMResult, done: Outcome
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.content},
                "finish_reason": done.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "rlm": extension(result),
    }


def chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` is a usage-only chunk (no choices)."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    """One SSE event: ``data: <json>`` (or ``data: [DONE]``) and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def now() -> int:
    return int(time.time())
