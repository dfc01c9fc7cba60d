"""The backend for any OpenAI-compatible chat completions endpoint.

OpenAI, OpenRouter, vLLM, llama.cpp, Ollama and LM Studio all speak the same
``POST /v1/chat/completions`` dialect, so one client covers them.  The SDK's
own retries are switched off (``max_retries=0``) and done here instead, so
that every attempt, wait and failure is visible in one place, ``Retry-After``
is honoured with a cap, and the final error is one of ours
(:class:`~rlm_mcp.errors.BackendError` and subclasses) with a message that
says what to fix and a ``kind`` that says how it failed: the endpoint could
not be reached, the connection was lost mid-response, the provider timed out,
rate-limited, refused the key, or answered garbage.  Every attempt, retried,
failed and cancelled ones included, is reported to the request's
``on_attempt`` listener, so retries are never invisible spend.

The body is parsed by hand rather than by the SDK's models: local servers
return all sorts of near-misses (no ``choices``, ``content: null``, HTML
error pages with status 200) and each deserves a precise message instead of
a pydantic validation dump.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import math
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import anyio
import openai

from rlm_mcp.backends.base import (
    Attempt,
    Completion,
    CompletionRequest,
    Message,
    TokenUsage,
    estimate_tokens,
)
from rlm_mcp.config import ModelEndpoint
from rlm_mcp.errors import (
    BackendAuthError,
    BackendConnectionLost,
    BackendError,
    BackendNotConfigured,
    BackendRateLimited,
    BackendResponseError,
    BackendTimeout,
    BackendUnreachable,
)

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_CAP",
    "DEFAULT_MAX_RETRY_AFTER",
    "OpenAICompatibleBackend",
    "backoff_delay",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_CAP = 20.0
DEFAULT_MAX_RETRY_AFTER = 60.0

_PLACEHOLDER_API_KEY = "not-needed"
_LOCAL_SUFFIXES = (".local", ".internal", ".lan", ".localhost", ".home.arpa")


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or urlparse(base_url).hostname == "api.openai.com"


def is_hosted(base_url: str | None) -> bool:
    """True for an endpoint on the internet (it needs a key), false for local and private ones.

    Local: no base URL is OpenAI's (hosted); loopback, private and link-local
    addresses, ``localhost``, single-label names (``ollama``, a compose service)
    and ``.local``/``.internal``/``.lan`` names are not hosted.
    """
    if base_url is None:
        return True
    host = (urlparse(base_url).hostname or "").lower()
    if not host or host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (ip.is_private or ip.is_loopback or ip.is_link_local)


_SNIPPET_CHARS = 300
# Models that reject ``max_tokens`` and want ``max_completion_tokens``.
_REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o\d|gpt-5)(?:$|[-.:])", re.IGNORECASE)

# httpx and httpx2 name their connect-phase errors alike; matching names keeps
# this module independent of which one the openai client runs on.
_CONNECT_ERRORS = frozenset({"ConnectError", "ConnectTimeout"})

Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait, or ``None`` if it did not say.

    Reads ``retry-after-ms`` (OpenAI's millisecond variant) first, then
    ``retry-after`` as seconds or as an HTTP date.  Negative or unparsable
    values count as not given.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        value = max(0.0, when.timestamp() - current)
    if not math.isfinite(value) or value < 0:
        return None
    return value


def backoff_delay(
    retry: int,
    *,
    base: float = DEFAULT_BACKOFF_BASE,
    cap: float = DEFAULT_BACKOFF_CAP,
    rng: random.Random | None = None,
) -> float:
    """Exponential back-off with jitter for the ``retry``-th retry (1-based).

    The delay is drawn from ``[d/2, d]`` where ``d = min(cap, base * 2**(retry-1))``:
    half is guaranteed so retries do not hammer a struggling server, half is
    random so many clients do not retry in lock-step.
    """
    ceiling = min(cap, base * 2.0 ** max(0, retry - 1))
    jitter = rng.random() if rng is not None else random.random()
    return ceiling * (0.5 + 0.5 * jitter)


class OpenAICompatibleBackend:
    """An :class:`~rlm_mcp.backends.base.LLMBackend` over the ``openai`` SDK.

    Args:
        endpoint: where to send requests and the default model.
        backoff_base: first back-off delay in seconds (tests pass tiny values).
        backoff_cap: the longest back-off delay.
        max_retry_after: the longest ``Retry-After`` honoured; longer requests
            are clamped to it rather than stalling a whole run.
        sleep: the coroutine used to wait between attempts; the one place this
            module sleeps.
        rng: source of jitter, for reproducible tests.
        client: an existing ``AsyncOpenAI`` (it must have ``max_retries=0``);
            by default one is built from ``endpoint`` and owned by the backend.
    """

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.model = endpoint.model
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep: Sleep = sleep or anyio.sleep
        self._rng = rng or random.Random()
        self._owns_client = client is None
        api_key = endpoint.api_key
        if client is None and api_key is None and is_hosted(endpoint.base_url):
            api_key = os.environ.get("OPENAI_API_KEY") if _is_openai(endpoint.base_url) else None
            if not api_key:
                where = endpoint.base_url or "OpenAI's API"
                raise BackendNotConfigured(
                    f"no API key for {where} (model {endpoint.model}): set RLM_API_KEY"
                    + (" or OPENAI_API_KEY" if _is_openai(endpoint.base_url) else "")
                    + " (a hosted endpoint needs one; local servers such as Ollama do not)"
                )
        self._client = client or openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=api_key or _PLACEHOLDER_API_KEY,
            timeout=endpoint.timeout_seconds,
            max_retries=0,
        )
        self._where = endpoint.base_url or str(self._client.base_url)

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(model={self.model!r}, base_url={self._where!r})"

    @property
    def max_attempts(self) -> int:
        return 1 + max(0, self.endpoint.max_retries)

    async def aclose(self) -> None:
        """Close the HTTP client (only if this backend created it)."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> OpenAICompatibleBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``, retrying transient failures, and return the answer.

        Each attempt is reported to ``request.on_attempt`` as it ends.

        Raises:
            BackendTimeout: every attempt timed out.
            BackendRateLimited: HTTP 429 persisted through the retries.
            BackendAuthError: HTTP 401 or 403.
            BackendResponseError: another error status that retrying cannot
                fix, retryable statuses that persisted, or an unusable body.
            BackendUnreachable: no connection could be made.
            BackendConnectionLost: the connection dropped mid-response.
        """
        model = request.model or self.model
        report = request.on_attempt or _ignore_attempt
        started = time.monotonic()
        attempts = self.max_attempts
        last: _Failure | None = None
        for attempt in range(1, attempts + 1):
            if last is not None:
                delay = self._delay_before(attempt - 1, last)
                logger.warning(
                    "%s (model %s, attempt %d/%d); retrying in %.2fs",
                    last.summary,
                    model,
                    attempt - 1,
                    attempts,
                    delay,
                )
                await self._sleep(delay)
            try:
                body, headers = await self._attempt(request, model)
            except _Failure as failure:
                report(
                    Attempt(
                        model,
                        "failed",
                        kind=failure.error.kind,
                        retry_after=failure.retry_after,
                    )
                )
                if not failure.retryable:
                    raise failure.final(model=model, attempts=attempt) from failure.__cause__
                last = failure
                continue
            except anyio.get_cancelled_exc_class():
                report(Attempt(model, "cancelled"))
                raise
            try:
                completion = self._to_completion(
                    body,
                    headers,
                    request=request,
                    model=model,
                    attempts=attempt,
                    latency=time.monotonic() - started,
                )
            except BackendError as exc:
                report(Attempt(model, "failed", kind=exc.kind, usage=_reported_usage(body)))
                raise
            report(Attempt(completion.model, "ok"))
            return completion
        assert last is not None
        raise last.final(model=model, attempts=attempts) from last.__cause__

    # -- one attempt ---------------------------------------------------------

    async def _attempt(
        self, request: CompletionRequest, model: str
    ) -> tuple[Any, Mapping[str, str]]:
        """One HTTP round trip; returns the parsed JSON body and headers."""
        timeout = self.endpoint.timeout_seconds
        try:
            with anyio.fail_after(timeout):
                raw = await self._client.chat.completions.with_raw_response.create(
                    **self._params(request, model)
                )
                response = raw.http_response
                text = response.text
        except TimeoutError as exc:
            raise _Failure.timeout(self, timeout) from exc
        except openai.APITimeoutError as exc:
            connect = _connect_failure(exc)
            if connect is not None:
                raise _Failure.unreachable(self, connect) from exc
            raise _Failure.timeout(self, timeout) from exc
        except openai.APIConnectionError as exc:
            connect = _connect_failure(exc)
            if connect is not None:
                raise _Failure.unreachable(self, connect) from exc
            cause = _root_cause(exc)
            raise _Failure(
                retryable=True,
                summary=f"connection to {self._where} lost mid-response: {_describe(cause)}",
                error=BackendConnectionLost,
                message=f"the connection to {self._where} was lost mid-response: {_describe(cause)}",
            ) from exc
        except openai.APIStatusError as exc:
            raise _Failure.from_status(self, exc) from exc
        except openai.OpenAIError as exc:
            raise _Failure(
                retryable=False,
                summary=f"client error: {exc}",
                error=BackendError,
                message=f"the openai client failed for {self._where}: {_describe(exc)}",
            ) from exc
        try:
            body = json.loads(text)
        except ValueError as exc:
            content_type = response.headers.get("content-type", "?")
            raise _Failure(
                retryable=False,
                summary="non-JSON body",
                error=BackendResponseError,
                message=(
                    f"{self._where} answered HTTP {response.status_code} with a body that is "
                    f"not JSON (content-type {content_type}): {_snippet(text)!r}"
                ),
            ) from exc
        return body, response.headers

    def _params(self, request: CompletionRequest, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model,
            "messages": [_message_param(m) for m in request.messages],
        }
        max_tokens = request.max_tokens or self.endpoint.max_output_tokens
        if max_tokens is not None:
            key = "max_completion_tokens" if _REASONING_MODEL.match(model) else "max_tokens"
            params[key] = max_tokens
        temperature = (
            request.temperature if request.temperature is not None else self.endpoint.temperature
        )
        if temperature is not None:
            params["temperature"] = temperature
        seed = request.seed if request.seed is not None else self.endpoint.seed
        if seed is not None:
            params["seed"] = seed
        if request.stop and not _REASONING_MODEL.match(model):
            params["stop"] = list(request.stop)
        return params

    def _delay_before(self, retry: int, failure: _Failure) -> float:
        if failure.retry_after is not None:
            return min(failure.retry_after, self.max_retry_after)
        return backoff_delay(retry, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng)

    # -- the answer ----------------------------------------------------------

    def _to_completion(
        self,
        body: Any,
        headers: Mapping[str, str],
        *,
        request: CompletionRequest,
        model: str,
        attempts: int,
        latency: float,
    ) -> Completion:
        def bad(reason: str) -> BackendResponseError:
            return BackendResponseError(
                f"{self._where} (model {model}) returned an unusable completion: {reason}: "
                f"{_snippet(json.dumps(body))}"
            )

        if not isinstance(body, dict):
            raise bad(f"expected a JSON object, got {type(body).__name__}")
        if "error" in body and not body.get("choices"):
            raise BackendResponseError(
                f"{self._where} (model {model}) returned an error with HTTP 200: "
                f"{_provider_message(body, '')}"
            )
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("no choices")
        choice = choices[0]
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise bad("the first choice has no message")
        message = choice["message"]
        finish_reason = choice.get("finish_reason")
        finish = finish_reason if isinstance(finish_reason, str) else None
        content = message.get("content")
        if not isinstance(content, str):
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                raise BackendResponseError(f"model {model} refused: {refusal}")
            what = "null" if content is None else type(content).__name__
            raise bad(f"message content is {what} (finish_reason={finish})")
        answered_by = body.get("model")
        return Completion(
            text=content,
            model=answered_by if isinstance(answered_by, str) and answered_by else model,
            usage=_usage(body.get("usage"), request, content),
            finish_reason=finish,
            latency_seconds=latency,
            attempts=attempts,
        )


class _Failure(Exception):
    """One failed attempt, and the error to raise if it is the last."""

    def __init__(
        self,
        *,
        retryable: bool,
        summary: str,
        error: type[BackendError],
        message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(summary)
        self.retryable = retryable
        self.summary = summary
        self.error = error
        self.message = message
        self.retry_after = retry_after

    def final(self, *, model: str, attempts: int) -> BackendError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        return self.error(f"{self.message} [model {model}, {tries}]")

    @classmethod
    def timeout(cls, backend: OpenAICompatibleBackend, timeout: float) -> _Failure:
        return cls(
            retryable=True,
            summary=f"no answer within {timeout:g}s",
            error=BackendTimeout,
            message=(
                f"{backend._where} did not answer within the {timeout:g}s timeout "
                "(raise timeout_seconds for slow models)"
            ),
        )

    @classmethod
    def unreachable(cls, backend: OpenAICompatibleBackend, cause: BaseException) -> _Failure:
        return cls(
            retryable=True,
            summary=f"could not connect to {backend._where}: {_describe(cause)}",
            error=BackendUnreachable,
            message=f"could not reach {backend._where}: {_describe(cause)}",
        )

    @classmethod
    def from_status(cls, backend: OpenAICompatibleBackend, exc: openai.APIStatusError) -> _Failure:
        status = exc.status_code
        headers = exc.response.headers
        detail = _provider_message(exc.body, _safe_text(exc.response))
        should_retry = headers.get("x-should-retry", "").lower()
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        else:
            retryable = status in (408, 429) or status >= 500
        error: type[BackendError] = BackendResponseError
        message = f"{backend._where} answered HTTP {status}: {detail}"
        if status == 429:
            error = BackendRateLimited
            message = f"{backend._where} rate-limited the requests (HTTP 429): {detail}"
        elif status in (401, 403):
            error = BackendAuthError
            message += " (check the API key and that it may use this model)"
        return cls(
            retryable=retryable,
            summary=f"HTTP {status} from {backend._where}",
            error=error,
            message=message,
            retry_after=parse_retry_after(headers) if retryable else None,
        )


def _ignore_attempt(attempt: Attempt) -> None:
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (cycles cut)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The cause when no connection was made (refused, DNS, connect timeout), else None."""
    for cause in _chain(exc):
        if isinstance(cause, ConnectionRefusedError | socket.gaierror) or any(
            cls.__name__ in _CONNECT_ERRORS for cls in type(cause).__mro__
        ):
            return _root_cause(cause)
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause with a message (the OS error rather than the wrappers)."""
    chain = _chain(exc)
    for cause in reversed(chain):
        if str(cause):
            return cause
    return chain[-1]


def _reported_usage(body: Any) -> TokenUsage | None:
    """Usage a provider reported in a body we could not use, if any."""
    raw = body.get("usage") if isinstance(body, dict) else None
    if isinstance(raw, dict):
        prompt = raw.get("prompt_tokens")
        completion = raw.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return TokenUsage(input_tokens=prompt, output_tokens=completion)
    return None


def _message_param(message: Message) -> Any:
    return {"role": message.role, "content": message.content}


def _usage(raw: Any, request: CompletionRequest, text: str) -> TokenUsage:
    reported = _reported_usage({"usage": raw})
    if reported is not None:
        return reported
    return TokenUsage(
        input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
        output_tokens=estimate_tokens(text),
        estimated=True,
    )


def _provider_message(body: object, fallback: str) -> str:
    """The human part of a provider's error body."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, str) and inner:
            return inner
        if isinstance(inner, dict):
            message = inner.get("message")
            if isinstance(message, str) and message:
                code = inner.get("code") or inner.get("type")
                return f"{message} ({code})" if isinstance(code, str) and code else message
    elif isinstance(body, str) and body:
        return _snippet(body)
    return _snippet(fallback) or "(empty body)"


def _safe_text(response: Any) -> str:
    try:
        return str(response.text)
    except Exception:
        return ""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _snippet(text: str) -> str:
    text = text.strip()
    if len(text) <= _SNIPPET_CHARS:
        return text
    return text[:_SNIPPET_CHARS] + f"... ({len(text)} chars)"
