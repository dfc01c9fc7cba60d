"""A test kit for code that calls rlm-mcp's models: fake models, no network, no keys.

Two doubles, for two depths of test:

* :class:`LoopbackLLMServer`: a scriptable OpenAI-compatible HTTP server on
  ``127.0.0.1``. Point any OpenAI client (or ``RLM_BASE_URL``, or
  :class:`~rlm_mcp.config.ModelEndpoint`) at :attr:`LoopbackLLMServer.base_url`
  and the whole HTTP path runs: headers, status codes, retries, timeouts,
  cancellation. Script it with :meth:`LoopbackLLMServer.enqueue` (strings or
  :class:`Reply` objects) or a :data:`Responder`, and inspect what it received
  in :attr:`LoopbackLLMServer.requests` (:class:`RecordedRequest`).
* :class:`ScriptedBackend`: an in-process
  :class:`~rlm_mcp.backends.base.LLMBackend` answering from a list of
  :data:`ScriptedReply` values or a function of the request, for engine tests
  that do not care about HTTP.

Example::

    from rlm_mcp.testing import LoopbackLLMServer, Reply

    with LoopbackLLMServer() as llm:
        llm.enqueue(Reply.error(429, retry_after="0"), "FINAL(42)")
        ...  # run code configured with base_url=llm.base_url
        assert len(llm.requests) == 2

Importing this package imports neither the server nor the engine: only the
backends' value types.
"""

from __future__ import annotations

from rlm_mcp.testing.loopback import LoopbackLLMServer
from rlm_mcp.testing.replies import DEFAULT_MODEL, RecordedRequest, Reply, Responder
from rlm_mcp.testing.scripted import ScriptedBackend, ScriptedReply

__all__ = [
    "DEFAULT_MODEL",
    "LoopbackLLMServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedBackend",
    "ScriptedReply",
]
