"""The ``rlm-mcp`` command: serve MCP, or index, ask, search, review and trace from a shell.

This is the one place that reads the environment. Results go to stdout;
progress, logs and errors go to stderr, so ``rlm-mcp serve`` over stdio
writes nothing but protocol to stdout and the other commands pipe cleanly.
Progress and colours appear only when stderr is a terminal (``NO_COLOR``
turns colours off); an error is one line on stderr naming what to fix.
A reader that stops early (``rlm-mcp search . def | head``) is not a failure:
like ripgrep, the command stops quietly and exits 0 when stdout is closed.

exit codes (the same for every command):
  0    success: an answer, hits, a clean review, the command's work done
  1    nothing found: no hits (find, search, symbols, references, callers),
       nothing indexed to answer from (ask), no trajectories (trace);
       review: a finding of severity error
  2    bad usage or configuration: an unknown flag, an invalid setting or
       config file, a bad regex, a PATH that does not exist, a FILE that is
       not a trajectory
  3    failure: the provider failed (bad key, unreachable, HTTP error), the
       cache directory is unusable, the port is busy, git failed, the review
       failed
  4    incomplete: a limit stopped the query (ask prints the best answer so
       far); review: no verdict (neither findings nor NO FINDINGS)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from rlm_mcp.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Ctx,
    Failure,
    UsageError,
    endpoint_hint,
    error_line,
    say,
    wants_color,
)
from rlm_mcp.errors import ConfigError, RepositoryNotFound, RlmMcpError
from rlm_mcp.settings_loader import SETTINGS, load_config

__all__ = ["EXIT_CODES", "build_parser", "main"]

EXIT_CODES = __doc__.split("exit codes", 1)[1] if __doc__ else ""
"""The exit-code table of the module docstring (the parser's epilog)."""

Command = Callable[[argparse.Namespace, Ctx], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """The ``rlm-mcp`` argument parser (every command, each with only its own flags)."""
    from rlm_mcp.cli._parser import build_parser as build

    return build(epilog="exit codes" + EXIT_CODES)


def _command(args: argparse.Namespace) -> Command:
    from rlm_mcp.cli import _cache, _chat, _index_cmds, _model_cmds, _search, _serve

    if args.command == "cache":
        return _cache.cmd_cache_list if args.cache_command == "list" else _cache.cmd_cache_prune
    commands: dict[str, Command] = {
        "serve": _serve.cmd_serve,
        "index": _index_cmds.cmd_index,
        "ask": _model_cmds.cmd_ask,
        "chat": _chat.cmd_chat,
        "find": _index_cmds.cmd_find,
        "search": _search.cmd_search,
        "symbols": _index_cmds.cmd_symbols,
        "references": _index_cmds.cmd_references,
        "callers": _index_cmds.cmd_callers,
        "outline": _index_cmds.cmd_outline,
        "read": _index_cmds.cmd_read,
        "map": _index_cmds.cmd_map,
        "review": _model_cmds.cmd_review,
        "trace": _model_cmds.cmd_trace,
    }
    return commands[args.command]


def _setup_logging(level: str, fmt: str = "text") -> None:
    from rlm_mcp.tracing import JsonFormatter, TextFormatter, TraceFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _interrupt_once() -> Any:
    """The first Ctrl-C interrupts; later ones are ignored while the command cleans up.

    A second press used to land in the middle of shutting down the parser pool or in
    the interpreter's exit, leaving tracebacks (and, before, orphaned helpers).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, handler)


def _pipe_closed(exc: BaseException) -> bool:
    """``exc`` is a write to a closed pipe, maybe re-raised by a library as its own error."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, BrokenPipeError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _reader_gone() -> int:
    """stdout's reader went away (``| head``): nothing more to say, and nothing is wrong.

    stdout is pointed at ``/dev/null`` so the interpreter's flush at exit, of what is
    still buffered, does not print a second ``BrokenPipeError``.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_OK


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        from rlm_mcp.cli._completion import render

        try:
            sys.stdout.write(render(parser, args.shell))
            sys.stdout.flush()
        except BrokenPipeError:
            return _reader_gone()
        return EXIT_OK
    environ = dict(os.environ if env is None else env)
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        config = load_config(
            flags, environ, args.config, warn=lambda m: say(f"rlm-mcp: warning: {m}")
        )
    except ConfigError as exc:
        say(error_line(str(exc), wants_color(environ, sys.stderr), "configuration error"))
        return EXIT_USAGE
    ctx = Ctx.create(config, environ, sys.stderr)
    _setup_logging(config.log_level, config.log_format)
    previous = _interrupt_once()
    try:
        code: int = anyio.run(_command(args), args, ctx)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except (UsageError, ConfigError, RepositoryNotFound) as exc:
        say(error_line(str(exc), ctx.color))
        return EXIT_USAGE
    except (Failure, RlmMcpError, OSError) as exc:
        if _pipe_closed(exc):
            return _reader_gone()
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {exc.strerror or exc}"
        say(error_line(message, ctx.color))
        hint = endpoint_hint(message, config)
        if hint:
            say(f"rlm-mcp: hint: {hint}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("rlm-mcp: interrupted")
        return EXIT_INTERRUPTED
