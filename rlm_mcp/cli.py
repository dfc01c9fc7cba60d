"""The ``rlm-mcp`` command: serve MCP, or index, ask, search, review and trace from a shell.

This is the one place that reads the environment. Results go to stdout;
progress, logs and errors go to stderr, so ``rlm-mcp serve`` over stdio
writes nothing but protocol to stdout and the other commands pipe cleanly.

Exit codes: 0 success; 1 a runtime failure (a missing model, an unreadable
path, a provider error); 2 bad usage or configuration. ``ask`` exits 2 when a
limit stopped the query; ``search`` exits 1 when nothing matched; ``review``
exits 1 when a finding has severity ``error``, 3 when the review failed and 4 when it
reached no verdict.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import anyio.to_thread

from rlm_mcp._version import __version__
from rlm_mcp.errors import ConfigError, RlmMcpError, SearchError
from rlm_mcp.settings_loader import LIMIT_NAMES, SETTINGS, Config, load_config

if TYPE_CHECKING:
    from rlm_mcp.engine.result import RLMResult
    from rlm_mcp.service import LoadSummary

__all__ = ["build_parser", "main"]

log = logging.getLogger("rlm_mcp")

_BY_NAME = {s.name: s for s in SETTINGS}
_COMMON = ("model", "base_url", "sub_model", "cache_dir", "trajectory_dir", "sandbox_unsafe")
_SERVE_ONLY = ("allowed_roots", "auth_token", "no_watch")
_METAVAR = {"int": "N", "float": "SECONDS", "decimal": "USD", "path": "DIR", "paths": "DIR"}

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_REVIEW_FAILED, EXIT_REVIEW_INCOMPLETE = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2."""


def _add_setting(parser: argparse.ArgumentParser | Any, name: str) -> None:
    s = _BY_NAME[name]
    assert s.flag is not None
    help_text = f"{s.help} [env {s.env}]".replace("%", "%%")
    if s.kind == "bool":
        parser.add_argument(s.flag, dest=name, action="store_true", default=None, help=help_text)
    elif s.kind == "paths":
        parser.add_argument(s.flag, dest=name, action="append", metavar="DIR", help=help_text)
    else:
        parser.add_argument(
            s.flag, dest=name, metavar=_METAVAR.get(s.kind, "VALUE"), help=help_text
        )


def _common_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    cfg = parent.add_argument_group("configuration (flags > environment > config file)")
    cfg.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file [default: $XDG_CONFIG_HOME/rlm-mcp/config.toml if present]",
    )
    _add_setting(cfg, "log_level")
    for name in _COMMON:
        _add_setting(cfg, name)
    limits = parent.add_argument_group("limits (per query, over the whole recursion tree)")
    for name in LIMIT_NAMES:
        _add_setting(limits, name)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parent = _common_parent()
    parser = argparse.ArgumentParser(
        prog="rlm-mcp",
        description=(
            "Answer questions about whole code repositories with Recursive Language Models: "
            "an MCP server, and the same engine from the shell."
        ),
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlm-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "serve",
        parents=[parent],
        help="run the MCP server (stdio or Streamable HTTP)",
        description="Run the MCP server. Over stdio, stdout carries only protocol; logs go to stderr.",
    )
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address [default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=8765, help="HTTP port [default: 8765]")
    for name in _SERVE_ONLY:
        _add_setting(p, name)
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an extra Origin the HTTP transport accepts (e.g. https://app.example); loopback "
        "origins are always accepted",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="an extra Host header the HTTP transport accepts (e.g. myhost:*)",
    )

    p = sub.add_parser(
        "index",
        parents=[parent],
        help="index a repository and print the load report",
        description="Index PATH (or refresh its cache) and print what was indexed and skipped.",
    )
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the full load report as JSON")

    p = sub.add_parser(
        "ask",
        parents=[parent],
        help="ask a question about a repository",
        description="Load PATH and answer QUESTION with the RLM. The answer goes to stdout, "
        "progress to stderr. With no model configured, it answers from ranked search alone "
        "(labelled so). Exit code: 0 completed, 2 a limit stopped it, 1 error.",
    )
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")

    p = sub.add_parser(
        "find",
        parents=[parent],
        help="ranked search for a question or identifier (no LLM)",
        description="Rank the definitions and files of PATH for QUERY: BM25 over names split "
        "into words, paths, signatures, docstrings and comments, plus identifiers written in "
        "the query. Prints path:start-end, kind, name and a snippet, best first. "
        "Exit code: 0 hits, 1 none, 2 error.",
    )
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="hits to show [default: 20]")
    p.add_argument("--glob", help="only files matching this glob (e.g. '*.py', 'src/**')")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")

    p = sub.add_parser(
        "search",
        parents=[parent],
        help="regex search over a repository (path:line:text)",
        description="Search the files of PATH with a Python regular expression. "
        "Exit code: 0 matches, 1 none, 2 error.",
    )
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("pattern", metavar="PATTERN")
    p.add_argument("--glob", help="only files matching this glob (e.g. '*.py', 'src/**')")
    p.add_argument("--max-results", type=int, default=100, metavar="N")
    p.add_argument("-i", "--ignore-case", action="store_true")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")

    p = sub.add_parser(
        "review",
        parents=[parent],
        help="review the working tree's changes with the whole repository as context",
        description="Review the git diff of the working tree against --base, reading the rest "
        "of the repository for context. Prints findings as path:line: severity: message "
        "(--json: the verdict, the findings, the raw answer and usage). The review fails "
        "closed: an answer that is neither findings nor the model's explicit NO FINDINGS is "
        "an error, never a clean pass.",
        epilog="exit codes:\n"
        "  0  the review completed: no findings, or none of severity error\n"
        "  1  the review completed with at least one finding of severity error\n"
        "  2  bad usage or configuration (e.g. an unknown --base)\n"
        "  3  the review failed: provider error (bad key, provider down), git failure\n"
        "  4  the review is incomplete: the answer was neither findings nor NO FINDINGS\n"
        "     (or had unreadable items), or a limit stopped the query; any findings\n"
        "     that could be read are still printed\n"
        "Only 0 and 1 are verdicts; a bot must treat every other code as a failed review.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--base",
        metavar="REF",
        help="revision to diff against [default: merge-base with origin/HEAD, main or master, "
        "else HEAD]",
    )
    p.add_argument("--repo", type=Path, default=Path("."), metavar="PATH")
    p.add_argument("--json", action="store_true", help="print findings, answer and usage as JSON")

    p = sub.add_parser(
        "trace",
        parents=[parent],
        help="print a query trajectory",
        description="Print a trajectory (JSON Lines) written by a query; without FILE, the "
        "newest one in the trajectory directory.",
    )
    p.add_argument("file", type=Path, nargs="?", metavar="FILE")
    p.add_argument("--full", action="store_true", help="do not shorten long replies and outputs")
    return parser


# -- helpers ------------------------------------------------------------------------


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _one_shot(config: Config) -> Config:
    """One-shot commands neither watch files nor confine paths."""
    settings = config.settings
    return replace(config, settings=replace(settings, index=replace(settings.index, watch=False)))


def _service(config: Config) -> Any:
    from rlm_mcp.service import RlmService

    return RlmService(config.settings, limits=config.limits)


class _Bar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.active = stream.isatty()
        self.drawn = False

    async def __call__(self, done: int, total: int) -> None:
        if not self.active:
            return
        width = 30
        filled = width * done // total if total else width
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


async def _load(service: Any, path: Path) -> LoadSummary:
    bar = _Bar(sys.stderr, "indexing")
    try:
        _, summary = await service.load(path, progress=bar, confine=False)
    finally:
        bar.close()
    return summary  # type: ignore[no-any-return]


def _counts(mapping: dict[str, int]) -> str:
    items = sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v:,}" for k, v in items) or "none"


async def _progress(event: dict[str, Any]) -> None:
    if event.get("kind") == "iteration":
        what = f"turn {event.get('iteration')}/{event.get('max_iterations')} (depth {event.get('depth', 0)})"
    else:
        what = f"{event.get('sub_calls', 0)} sub-calls"
    _say(f"rlm-mcp: {what}; {event.get('calls', 0)} LLM calls, ${event.get('cost_usd', '0')} spent")


def _usage_line(result: RLMResult) -> str:
    u = result.usage
    line = (
        f"rlm-mcp: {result.status}"
        + (f" ({result.limit})" if result.limit else "")
        + f"; {u.calls} LLM calls, {u.tokens:,} tokens, ${u.cost_usd}, {result.wall_seconds:.1f}s"
    )
    if result.trajectory:
        line += f"; trajectory: {result.trajectory}"
    return line


# -- commands -----------------------------------------------------------------------


async def cmd_index(args: argparse.Namespace, config: Config) -> int:
    service = _service(_one_shot(config))
    try:
        summary = await _load(service, args.path)
    finally:
        await service.aclose()
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
        return EXIT_OK
    print(
        f"indexed {summary.root}: {summary.files:,} files, {summary.tokens:,} tokens, "
        f"{summary.symbols:,} symbols in {summary.seconds:.2f}s "
        f"({summary.parsed:,} parsed, {summary.reused:,} reused from the cache)"
    )
    print(f"languages: {_counts(summary.languages)}")
    print(f"skipped: {_counts(summary.skipped)}")
    return EXIT_OK


async def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    if not _llm_configured(config):
        return await _ask_from_search(args, config)
    service = _service(_one_shot(config))
    try:
        service.engine()
        await _load(service, args.path)
        result: RLMResult = await service.query(args.question, progress=_progress)
    finally:
        await service.aclose()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.answer)
    _say(_usage_line(result))
    if result.status == "error":
        _say(f"rlm-mcp: error: {result.error}")
        return EXIT_FAIL
    return EXIT_OK if result.status == "completed" else EXIT_USAGE


def _llm_configured(config: Config) -> bool:
    return config.settings.root_model is not None


async def _ranked(args: argparse.Namespace, config: Config, query: str, limit: int) -> list[Any]:
    service = _service(_one_shot(config))
    try:
        await _load(service, args.path)
        repo = service.get().repo
        try:
            hits: list[Any] = await anyio.to_thread.run_sync(
                partial(repo.search, query, limit, getattr(args, "glob", None))
            )
        except SearchError as exc:
            raise UsageError(str(exc)) from None
    finally:
        await service.aclose()
    return hits


def _hit_dict(hit: Any) -> dict[str, Any]:
    return {
        "path": hit.path,
        "line": hit.line,
        "end_line": hit.end_line,
        "qualname": hit.qualname,
        "kind": hit.kind,
        "snippet": hit.snippet,
        "score": hit.score,
    }


async def _ask_from_search(args: argparse.Namespace, config: Config) -> int:
    """No model configured: answer with the ranked locations, labelled as such."""
    hits = await _ranked(args, config, args.question, 10)
    if args.json:
        payload = {
            "answer": None,
            "status": "search_only",
            "candidates": [_hit_dict(h) for h in hits],
        }
        print(json.dumps(payload, indent=2))
    else:
        print("No model is configured, so this answer comes from ranked search alone (no LLM).")
        if hits:
            print("The most likely places for your question:")
            for h in hits:
                print(f"  {h}")
        else:
            print("Nothing in the index matches the question's words.")
    _say(
        "rlm-mcp: set RLM_MODEL (and RLM_BASE_URL for a local server) to have a model read "
        "these places and answer; see `rlm-mcp ask --help`"
    )
    return EXIT_OK


async def cmd_find(args: argparse.Namespace, config: Config) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    hits = await _ranked(args, config, args.query, args.limit)
    if args.json:
        print(json.dumps({"hits": [_hit_dict(h) for h in hits]}, indent=2))
    else:
        for h in hits:
            print(h)
    return EXIT_OK if hits else EXIT_FAIL


async def cmd_search(args: argparse.Namespace, config: Config) -> int:
    if args.max_results < 1:
        raise UsageError("--max-results must be at least 1")
    service = _service(_one_shot(config))
    try:
        await _load(service, args.path)
        repo = service.get().repo
        try:
            hits = await anyio.to_thread.run_sync(
                partial(repo.grep, args.pattern, args.glob, args.max_results + 1, args.ignore_case)
            )
        except SearchError as exc:
            raise UsageError(str(exc)) from None
    finally:
        await service.aclose()
    shown, more = hits[: args.max_results], len(hits) > args.max_results
    if args.json:
        print(json.dumps({"hits": [str(h) for h in shown], "truncated": more}, indent=2))
    else:
        for hit in shown:
            print(hit)
    if more:
        _say(f"rlm-mcp: more than {args.max_results} hits; raise --max-results to see more")
    return EXIT_OK if shown else EXIT_FAIL


async def cmd_review(args: argparse.Namespace, config: Config) -> int:
    from rlm_mcp.review import build_question, collect_diff, find_base, git_toplevel, judge

    repo = git_toplevel(args.repo.expanduser().resolve())
    base = args.base or find_base(repo)
    diff = collect_diff(repo, base)
    if not diff.strip():
        _say(f"rlm-mcp: no changes against {base}")
        if args.json:
            empty: dict[str, Any] = {"base": base, "verdict": "no_findings", "problem": None}
            print(json.dumps({**empty, "findings": [], "answer": "", "status": "completed"}))
        return EXIT_OK
    service = _service(_one_shot(config))
    try:
        service.engine()
        await _load(service, repo)
        _say(f"rlm-mcp: reviewing {len(diff.splitlines()):,} diff lines against {base}")
        result: RLMResult = await service.query(
            build_question(diff, base),
            progress=_progress,
            context=diff,
            context_label=f"diff of the working tree against {base}",
        )
    finally:
        await service.aclose()
    review = judge(result.answer, result.status, error=result.error, limit=result.limit)
    if args.json:
        out = {
            "base": base,
            "verdict": review.verdict,
            "problem": review.problem,
            "findings": [f.as_dict() for f in review.findings],
            **{k: v for k, v in result.as_dict().items() if k != "evidence"},
        }
        print(json.dumps(out, indent=2))
    else:
        for f in review.findings:
            print(f)
    _say(_usage_line(result))
    if review.verdict == "failed":
        _say(f"rlm-mcp: error: review failed: {review.problem}")
        return EXIT_REVIEW_FAILED
    if review.verdict == "incomplete":
        _say(f"rlm-mcp: error: review incomplete: {review.problem}")
        return EXIT_REVIEW_INCOMPLETE
    return EXIT_FAIL if review.blocking else EXIT_OK


async def cmd_trace(args: argparse.Namespace, config: Config) -> int:
    from rlm_mcp.engine.trajectory import format_trajectory, read_trajectory

    path: Path | None = args.file
    if path is None:
        directory = config.settings.trajectory_dir
        found = sorted(directory.glob("*.jsonl")) if directory and directory.is_dir() else []
        if not found:
            raise RlmMcpError(f"no trajectories in {directory}; pass FILE")
        path = found[-1]
    if not path.is_file():
        raise RlmMcpError(f"no such trajectory file: {path}")
    sys.stdout.write(format_trajectory(read_trajectory(path), full=args.full))
    return EXIT_OK


async def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from rlm_mcp.server import create_server
    from rlm_mcp.service import RlmService

    settings = config.settings
    server = create_server(
        settings, service_factory=lambda: RlmService(settings, limits=config.limits)
    )
    if args.transport == "stdio":
        log.info("serving MCP over stdio")
        await server.run_stdio_async()
        return EXIT_OK
    from rlm_mcp.http import serve_http

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    _say(f"rlm-mcp: serving MCP over Streamable HTTP at http://{shown}:{args.port}/mcp")
    await serve_http(
        server,
        host=args.host,
        port=args.port,
        auth_token=config.auth_token,
        allowed_origins=args.allowed_origin,
        allowed_hosts=args.allowed_host,
        log_level=config.log_level,
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], Awaitable[int]]] = {
    "serve": cmd_serve,
    "index": cmd_index,
    "ask": cmd_ask,
    "find": cmd_find,
    "search": cmd_search,
    "review": cmd_review,
    "trace": cmd_trace,
}


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    environ = dict(os.environ if env is None else env)
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        config = load_config(
            flags, environ, args.config, warn=lambda m: _say(f"rlm-mcp: WARNING: {m}")
        )
    except ConfigError as exc:
        _say(f"rlm-mcp: configuration error: {exc}")
        return EXIT_USAGE
    _setup_logging(config.log_level)
    try:
        return anyio.run(COMMANDS[args.command], args, config)
    except (UsageError, ConfigError) as exc:
        _say(f"rlm-mcp: error: {exc}")
        return EXIT_USAGE
    except RlmMcpError as exc:
        _say(f"rlm-mcp: error: {exc}")
        return EXIT_REVIEW_FAILED if args.command == "review" else EXIT_FAIL
    except KeyboardInterrupt:
        _say("rlm-mcp: interrupted")
        return 130
