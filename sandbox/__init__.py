"""Isolated, persistent Python REPL sessions for untrusted, model-written code.

A ``Session`` runs code in a separate worker process that keeps its namespace between
``exec`` calls. The worker locks itself down before running anything untrusted (resource
limits, no_new_privs, Landlock, seccomp) and, where bubblewrap works, runs inside fresh user,
network and PID namespaces as an unprivileged uid. The host talks to it over pipes with
length-prefixed JSON frames and treats every byte it receives as hostile.

This package deliberately imports nothing from ``rlm_mcp``.
"""

from sandbox.errors import SandboxError, SandboxUnavailableError
from sandbox.isolation import IsolationReport, detect_isolation
from sandbox.session import ExecResult, HostFunction, Session, SessionConfig

__all__ = [
    "ExecResult",
    "HostFunction",
    "IsolationReport",
    "SandboxError",
    "SandboxUnavailableError",
    "Session",
    "SessionConfig",
    "detect_isolation",
]
