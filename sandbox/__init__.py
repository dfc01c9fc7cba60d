"""Isolated, persistent Python REPL sessions for untrusted, model-written code.

A ``Session`` runs code in a separate worker process that keeps its namespace between
``exec`` calls and reports stdout, stderr, the traceback text and the repr of a trailing
expression. The boundary is the operating system, not the language:

* the worker locks itself down before the first untrusted line: resource limits (address
  space scaled to the data, no file writes, few fds, no core, CPU budget), no_new_privs,
  Landlock (read-only access to the root, the readable paths and the interpreter; nothing
  writable; TCP bind/connect denied; signals and abstract unix sockets scoped) and a seccomp
  filter (no sockets except an AF_UNIX socketpair for asyncio; no exec, fork, ptrace,
  io_uring, namespaces, mounts, rlimit changes, signals to other processes, chmod/chown/xattr);
* where bubblewrap works it wraps the worker in fresh user, network, PID, IPC and UTS
  namespaces as uid 65534 with no capabilities and only the needed paths mounted read-only;
* the host reads length-prefixed JSON frames from dedicated pipes with a size bound, a schema
  check and an allow-list of host functions; any anomaly kills the worker;
* a soft timeout raises ``TimeoutError`` inside the cell (state kept); a hard deadline kills
  the process group and respawns the worker, and the result tells the model its variables
  were lost.

``Session.start`` refuses (``SandboxUnavailableError``) when rlimits, no_new_privs, Landlock
or seccomp are missing, unless ``allow_unsafe=True``.

Known behaviour worth knowing when writing prompts or host functions:

* no thread may outlive its cell: threads still running when a cell ends are stopped (thread
  pools left open are shut down, ``SystemExit`` is raised in the rest) and the cell's stderr
  says so; if one cannot be stopped (blocked in C, or catching ``SystemExit``) the worker is
  restarted and the result says that the variables were lost. This is cooperative: code that
  sets out to defeat it can, and RLIMIT_CPU stays the backstop;
* at most ``max_concurrent_host_calls`` host calls (default 4) are in flight per session; more
  wait, for as long as their cell may run, then raise ``TimeoutError``; the host refuses calls
  beyond the cap from a worker that ignores it;
* output written straight to fds 1/2 (``os.write``, C extensions) is not captured;
* there is no writable scratch directory: data lives in variables;
* host functions run in a host thread pool and may block; ``close`` waits for running ones.

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
