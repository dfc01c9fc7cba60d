"""The caller's own REPL functions: trusted host code behind the sandbox's bounded path.

``RLM(functions={"lookup_ticket": fn})`` exposes ``fn`` to model code as
``lookup_ticket(...)``. The function is the caller's code and runs in the
host process with the host's rights: it is trusted, the model's arguments are
not. Each call goes through the same host-call path as ``repo.*`` (the
sandbox's per-query call budget and concurrency cap) and, on top:

* arguments over :data:`MAX_ARG_BYTES` (as JSON) are refused before the call;
* a call running longer than :data:`CALL_TIMEOUT_SECONDS` returns a
  ``TimeoutError`` to model code (the host thread is left to finish: Python
  cannot stop it, so a function that can hang should have its own timeout);
* a result that is not JSON (strings, numbers, lists, dicts) or is over
  :data:`MAX_RESULT_BYTES` becomes an error;
* any exception the function raises is REPL output for the model, never a
  server failure.
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import json
import keyword
import threading
from collections.abc import Callable, Mapping
from typing import Any

from rlm_mcp.engine.replapi import RESERVED
from rlm_mcp.errors import ConfigError

__all__ = ["CALL_TIMEOUT_SECONDS", "MAX_ARG_BYTES", "MAX_RESULT_BYTES", "caller_functions"]

CALL_TIMEOUT_SECONDS = 30.0
MAX_ARG_BYTES = 1_000_000
MAX_RESULT_BYTES = 1_000_000
_TAKEN = RESERVED | {"answer", "context", "candidates", "FINAL", "FINAL_VAR", "SHOW_VARS"}


def _size(value: Any, what: str) -> int:
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        raise TypeError(
            f"{what} must be JSON values (str, int, float, bool, None, list, dict)"
        ) from None


def bounded(
    name: str, fn: Callable[..., Any], timeout: float = CALL_TIMEOUT_SECONDS
) -> Callable[..., Any]:
    """``fn`` with argument and result caps and a wall-clock timeout."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if _size([list(args), kwargs], f"the arguments of {name}") > MAX_ARG_BYTES:
            raise ValueError(f"the arguments of {name} are over {MAX_ARG_BYTES} bytes as JSON")
        done = concurrent.futures.Future[Any]()

        def target() -> None:
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # reported to model code, never raised here
                done.set_exception(exc)

        threading.Thread(target=target, name=f"rlm-fn:{name}", daemon=True).start()
        try:
            value = done.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"{name} did not return within {timeout:g} s") from None
        if _size(value, f"the result of {name}") > MAX_RESULT_BYTES:
            raise ValueError(f"the result of {name} is over {MAX_RESULT_BYTES} bytes as JSON")
        return value

    return functools.wraps(fn)(call)


def caller_functions(
    functions: Mapping[str, Callable[..., Any]] | None,
) -> dict[str, Callable[..., Any]]:
    """Check the names and wrap each function; raises ConfigError for a bad name or value."""
    out: dict[str, Callable[..., Any]] = {}
    for name, fn in (functions or {}).items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ConfigError(f"REPL function names must be Python identifiers, got {name!r}")
        if name in _TAKEN or name.startswith("_"):
            raise ConfigError(
                f"the REPL function name {name!r} is taken by the REPL itself or private"
            )
        if not callable(fn):
            raise ConfigError(f"the REPL function {name!r} is not callable")
        out[name] = bounded(name, fn)
    return out


def describe(functions: Mapping[str, Callable[..., Any]]) -> str:
    """Prompt lines for the caller's functions: name, signature and the docstring's first line."""
    lines = []
    for name, fn in functions.items():
        original = getattr(fn, "__wrapped__", fn)
        try:
            sig = str(inspect.signature(original, eval_str=True))
        except Exception:  # an annotation that does not evaluate: show it as written
            try:
                sig = str(inspect.signature(original))
            except (TypeError, ValueError):
                sig = "(...)"
        doc = (inspect.getdoc(original) or "a function of the caller's").splitlines()[0]
        lines.append(f"- {name}{sig}: {doc}")
    return "\n".join(lines)
