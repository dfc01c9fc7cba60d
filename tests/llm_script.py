"""Scripting the loopback LLM: tell root turns from sub-calls, answer each from a script."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rlm_mcp.engine.prompts import SUB_SYSTEM
from rlm_mcp.testing import Reply


def is_sub_call(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and messages[0].get("content") == SUB_SYSTEM


def last_user(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


class Script:
    """Answers root turns from a list (in order) and sub-calls with a function.

    Records the root conversations it saw, so tests can assert on what the model was told.
    """

    def __init__(
        self,
        root: list[str | Reply] | Callable[[dict[str, Any]], str | Reply],
        sub: Callable[[str], str | Reply] | None = None,
    ) -> None:
        self.root = root
        self.sub = sub or (lambda prompt: f"sub-answer: {prompt[:40]}")
        self.root_bodies: list[dict[str, Any]] = []
        self.sub_prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str | Reply:
        if is_sub_call(body):
            prompt = last_user(body)
            with self._lock:
                self.sub_prompts.append(prompt)
            return self.sub(prompt)
        with self._lock:
            self.root_bodies.append(body)
            if callable(self.root):
                return self.root(body)
            if not self.root:
                return Reply.error(500, "script: no more root replies")
            return self.root.pop(0)


def code(src: str) -> str:
    return f"Let me run this.\n```python\n{src.strip()}\n```\n"
