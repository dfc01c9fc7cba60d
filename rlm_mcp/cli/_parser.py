"""The command line: every command and the flags it actually uses.

Settings flags come from :data:`~rlm_mcp.settings_loader.SETTINGS`, but each
command offers only the groups it reads: the model and the limits on ``ask``,
``review`` and ``serve``; the cache directory on everything that loads a
repository; the trajectory directory where trajectories are written or read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlm_mcp._version import __version__
from rlm_mcp.settings_loader import LIMIT_NAMES, SETTINGS

_BY_NAME = {s.name: s for s in SETTINGS}
_MODEL = (
    "model",
    "base_url",
    "sub_model",
    "temperature",
    "seed",
    "strategy",
    "trajectory_dir",
    "sandbox_unsafe",
)
_SERVE_ONLY = ("allowed_roots", "auth_token", "no_watch")
_METAVAR = {
    "level": "LEVEL",
    "int": "N",
    "float": "SECONDS",
    "decimal": "USD",
    "path": "DIR",
    "paths": "DIR",
}
_METAVAR_BY_NAME = {"temperature": "T", "strategy": "NAME"}
_GLOB_HELP = "only files matching this glob (e.g. '*.py', 'src/**')"


def _add_setting(parser: argparse.ArgumentParser | Any, name: str) -> None:
    s = _BY_NAME[name]
    assert s.flag is not None
    help_text = f"{s.help} [env {s.env}]".replace("%", "%%")
    if s.kind == "bool":
        parser.add_argument(s.flag, dest=name, action="store_true", default=None, help=help_text)
    elif s.kind == "paths":
        parser.add_argument(s.flag, dest=name, action="append", metavar="DIR", help=help_text)
    else:
        metavar = _METAVAR_BY_NAME.get(name) or _METAVAR.get(s.kind, "VALUE")
        parser.add_argument(s.flag, dest=name, metavar=metavar, help=help_text)


def _settings(p: argparse.ArgumentParser, *names: str, limits: bool = False) -> None:
    """The configuration group (``--config``, ``--log-level`` and ``names``), and the limits."""
    cfg = p.add_argument_group("configuration (flags > environment > config file)")
    cfg.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file [default: $XDG_CONFIG_HOME/rlm-mcp/config.toml if present]",
    )
    for name in ("log_level", "log_format", *names):
        _add_setting(cfg, name)
    if limits:
        group = p.add_argument_group("limits (per query, over the whole recursion tree)")
        for name in LIMIT_NAMES:
            _add_setting(group, name)


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show turn, calls and spend on stderr [default: only when stderr is a terminal]",
    )


def _path(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="the repository (or one file)")


def _json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _limit(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument(
        "--limit", type=int, default=default, metavar="N", help=f"at most N [default: {default}]"
    )


def _serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the MCP server (stdio or Streamable HTTP)",
        description="Run the MCP server. Over stdio, stdout carries only protocol; logs go to "
        "stderr. Over HTTP the address is printed once the port is bound; a busy port exits 3.",
    )
    p.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default=None,
        help="stdio, or Streamable HTTP at /mcp plus the OpenAI-compatible /v1 routes "
        "[default: stdio; http with --openai-only]",
    )
    p.add_argument(
        "--openai-only",
        action="store_true",
        help="over HTTP, serve only the OpenAI-compatible routes (GET /v1/models, "
        "POST /v1/chat/completions), no /mcp",
    )
    p.add_argument(
        "--openai-max-body-mb",
        type=float,
        default=32.0,
        metavar="MB",
        help="largest /v1 request body, in MiB (413 above it) [default: 32]",
    )
    p.add_argument(
        "--openai-max-concurrent",
        type=int,
        default=8,
        metavar="N",
        help="most /v1 chat completions running at once (429 when full) [default: 8]",
    )
    p.add_argument(
        "--openai-max-messages",
        type=int,
        default=10_000,
        metavar="N",
        help="most messages in one /v1 request (400 above it) [default: 10000]",
    )
    p.add_argument(
        "--openai-heartbeat-seconds",
        type=float,
        default=4.0,
        metavar="SECONDS",
        help="a streamed /v1 response sends an SSE comment at least this often while the query "
        "runs [default: 4]",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address [default: 127.0.0.1]")
    p.add_argument(
        "--port", type=int, default=8765, help="HTTP port; 0 picks a free one [default: 8765]"
    )
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
    _settings(p, *_MODEL, "cache_dir", "index_url", *_SERVE_ONLY, limits=True)


def _model_commands(sub: Any) -> None:
    p = sub.add_parser(
        "ask",
        help="ask a question about a repository",
        description="Load PATH and answer QUESTION with the RLM. The answer goes to stdout, "
        "progress to stderr. With no model configured, it answers from ranked search alone "
        "(labelled so). Exit code: 0 answered, 1 nothing indexed, 3 error, 4 a limit "
        "stopped it (the best answer is printed).",
    )
    _path(p)
    p.add_argument("question", metavar="QUESTION")
    _json(p, "the full result")
    _progress(p)
    _settings(p, *_MODEL, "cache_dir", "index_url", limits=True)

    p = sub.add_parser(
        "chat",
        help="an interactive prompt over a repository: follow-up questions in one session",
        description="Load PATH and answer questions typed at the prompt, each a follow-up of "
        "the ones before: the REPL keeps its variables and the earlier questions and answers "
        "are recalled (the oldest summarised when they outgrow the model's window). /reset "
        "starts a new session; /quit or Ctrl-D ends the chat. On a terminal the line editor "
        "keeps a history; questions can also be piped in, one per line. Answers go to stdout, "
        "progress to stderr.",
    )
    _path(p)
    _progress(p)
    _settings(p, *_MODEL, "cache_dir", "index_url", limits=True)

    p = sub.add_parser(
        "review",
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
    _json(p, "findings, answer and usage")
    _progress(p)
    _settings(p, *_MODEL, "cache_dir", "index_url", limits=True)

    p = sub.add_parser(
        "trace",
        help="print a query trajectory",
        description="Print a trajectory (JSON Lines) written by a query; without FILE, the "
        "newest one in the trajectory directory. A file that is not a trajectory exits 2. "
        "--html OUT writes a page instead: the recursion tree with each turn's code and "
        "output folded, tokens and time per node, totals, the guardrail and the citations.",
    )
    p.add_argument("file", type=Path, nargs="?", metavar="FILE")
    p.add_argument("--full", action="store_true", help="do not shorten long replies and outputs")
    p.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="write the recursion tree as one self-contained HTML page to OUT ('-': stdout)",
    )
    _settings(p, "trajectory_dir")


class _Intermixed(argparse.ArgumentParser):
    """A parser whose positionals may sit between flags (``search PATH -F PATTERN``), as
    ripgrep's do, with ``PATH`` optional."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def _search(sub: Any) -> None:
    kind = sub._parser_class
    sub._parser_class = _Intermixed
    try:
        p = sub.add_parser(
            "search",
            help="regex or fixed-string search over a repository (path:line:text)",
            description="Search the files of PATH (default: the current directory) for a "
            "Python regular expression (or, with -F, a fixed string), with ripgrep's flags "
            "where they fit. Prints path:line:text like grep; -C/-A/-B add context lines "
            "(path-line-text, groups separated by --); -l lists files, -c counts per file. "
            "Reports the total on stderr and pages with --offset. Files skipped at indexing "
            "(too large, generated, minified, binary) are not searched: when nothing matches, "
            "or with -v, it says how many and how to include them. A first search of a large "
            "tree not yet indexed answers from a direct scan (ripgrep when installed) while the "
            "index is built in the background. Exit code: 0 matches, 1 none, 2 bad usage.",
        )
    finally:
        sub._parser_class = kind
    p.add_argument(
        "words",
        nargs="*",
        metavar="[PATH] PATTERN",
        help="with one word, the pattern (PATH is .); with -e, every word is a PATH",
    )
    p.add_argument(
        "-e",
        "--regexp",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a pattern (repeatable: a line matching any of them is a hit)",
    )
    p.add_argument("-F", "--fixed-strings", action="store_true", help="PATTERN is a literal string")
    p.add_argument("-i", "--ignore-case", action="store_true")
    p.add_argument(
        "-w",
        "--word-regexp",
        action="store_true",
        help="only matches surrounded by non-word characters",
    )
    p.add_argument(
        "-C", "--context", type=int, default=0, metavar="N", help="show N lines around each hit"
    )
    p.add_argument("-A", "--after-context", type=int, metavar="N", help="N lines after each hit")
    p.add_argument("-B", "--before-context", type=int, metavar="N", help="N lines before each hit")
    p.add_argument(
        "-l", "--files-with-matches", action="store_true", help="print only the paths with a hit"
    )
    p.add_argument("-c", "--count", action="store_true", help="print path:N, hits per file")
    p.add_argument(
        "-g",
        "--glob",
        action="append",
        metavar="GLOB",
        help="only files matching GLOB (repeatable; '!' excludes, braces expand, the last "
        "matching glob wins; e.g. -g '*.{py,pyi}' -g '!tests/**')",
    )
    p.add_argument(
        "-t",
        "--type",
        action="append",
        default=[],
        metavar="TYPE",
        help="only files of TYPE (repeatable; --type-list lists them)",
    )
    p.add_argument(
        "-T", "--type-not", action="append", default=[], metavar="TYPE", help="no files of TYPE"
    )
    p.add_argument("--type-list", action="store_true", help="print the file types and exit")
    p.add_argument(
        "--color",
        "--colour",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour paths, line numbers and matches [default: auto: on a terminal, "
        "unless NO_COLOR is set]",
    )
    p.add_argument(
        "--max-results", type=int, default=100, metavar="N", help="hits per page [default: 100]"
    )
    p.add_argument(
        "--offset", type=int, default=0, metavar="N", help="skip the first N hits [default: 0]"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="always report the files not searched"
    )
    _json(p, 'the page ({"hits": [{"path", "line", "text"}], "truncated", "total", ...})')
    _settings(p, "cache_dir", "index_url")


def _index_commands(sub: Any) -> None:
    p = sub.add_parser(
        "index",
        help="index a repository and print the load report",
        description="Index PATH (or refresh its cache) and print what was indexed and skipped.",
    )
    _path(p)
    _json(p, "the full load report")
    p.add_argument(
        "--commit",
        nargs="?",
        const="HEAD",
        metavar="REV",
        help="pin the shared index (--index-url) to this commit of PATH's checkout "
        "[default: HEAD]; a commit not yet indexed starts from the nearest indexed one, "
        "so only the files that differ are parsed",
    )
    _settings(p, "cache_dir", "index_url")

    p = sub.add_parser(
        "find",
        help="ranked search for a question or identifier (no LLM)",
        description="Rank the definitions and lines of PATH for QUERY, fusing BM25 over "
        "names, paths, signatures, docstrings and comments, a ranked grep of the query's "
        "words, and the callers of an identifier the query names ('what breaks if `f` "
        "changes?' lists f's callers). Tests rank below the code they test unless QUERY asks "
        "about tests. Prints path:start-end, kind, name, a snippet, the score and the signals "
        "that found it, best first. Exit code: 0 hits, 1 none, 2 bad usage.",
    )
    _path(p)
    p.add_argument("query", metavar="QUERY")
    _limit(p, 20)
    p.add_argument(
        "-g",
        "--glob",
        action="append",
        metavar="GLOB",
        help="only files matching GLOB (repeatable; '!' excludes, the last matching glob wins)",
    )
    p.add_argument(
        "--exclude-tests", action="store_true", help="leave tests and fixtures out of the hits"
    )
    _json(p, "the hits (as rlm_find returns them)")
    _settings(p, "cache_dir", "index_url")

    _search(sub)

    p = sub.add_parser(
        "symbols",
        help="definitions by name (Class.method works)",
        description="Find the definitions (functions, classes, methods, ...) named QUERY: "
        "exact, then prefix, then substring matches (--match to choose). Prints "
        "path:start-end: kind qualname: signature. Exit code: 0 found, 1 none, 2 bad usage.",
    )
    _path(p)
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--kind", help="only this kind (function, class, method, ...)")
    p.add_argument("--glob", help=_GLOB_HELP)
    p.add_argument(
        "--match", choices=("auto", "exact", "prefix", "substring", "regex"), default="auto"
    )
    _limit(p, 50)
    _json(p, "the symbols (as rlm_symbols returns them)")
    _settings(p, "cache_dir", "index_url")

    for name, helptext, what in (
        ("references", "where a name is used (path:line: text)", "rlm_references"),
        ("callers", "each use of a name with the definition that contains it", "rlm_callers"),
    ):
        p = sub.add_parser(
            name,
            help=helptext,
            description=f"{helptext[0].upper()}{helptext[1:]}. Exit code: 0 found, 1 none.",
        )
        _path(p)
        p.add_argument("name", metavar="NAME")
        _limit(p, 200)
        _json(p, f"the result (as {what} returns it)")
        _settings(p, "cache_dir", "index_url")

    p = sub.add_parser(
        "outline",
        help="the definitions in one file, in source order",
        description="The definitions in FILE (relative to PATH, or a path on disk under it).",
    )
    _path(p)
    p.add_argument("file", metavar="FILE")
    _json(p, "the symbols (as rlm_outline returns them)")
    _settings(p, "cache_dir", "index_url")

    p = sub.add_parser(
        "read",
        help="lines of an indexed file, numbered",
        description="Print lines --start..--end (1-based, inclusive) of FILE as the index has it.",
    )
    _path(p)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--start", type=int, default=1, metavar="N", help="first line [default: 1]")
    p.add_argument("--end", type=int, metavar="N", help="last line [default: the last]")
    _json(p, "the text (as rlm_read returns it)")
    _settings(p, "cache_dir", "index_url")

    p = sub.add_parser(
        "map",
        help="a ranked overview of the repository's important files and symbols",
        description="The repository map: files and symbols ranked by the reference graph "
        "(PageRank), biased toward --focus, cut to --tokens.",
    )
    _path(p)
    p.add_argument(
        "--tokens",
        type=int,
        default=1024,
        metavar="N",
        help="the map's size in tokens (rlm_repo_map's max_tokens) [default: 1024]",
    )
    p.add_argument(
        "--focus", action="append", metavar="PATH_OR_NAME", help="rank these up (repeatable)"
    )
    _json(p, "the map (as rlm_repo_map returns it)")
    _settings(p, "cache_dir", "index_url")


def _cache(sub: Any) -> None:
    p = sub.add_parser(
        "cache",
        help="list or prune the index caches and trajectories",
        description="The per-repository index caches (in the cache directory) and the query "
        "trajectories.",
    )
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    q = csub.add_parser(
        "list",
        help="each cached repository: root, size on disk, last used",
        description="List each cache: its size on disk, when it was last used and the "
        "repository it indexes (marked missing when that path is gone).",
    )
    _json(q, "the caches and the trajectory totals")
    _settings(q, "cache_dir", "trajectory_dir")
    q = csub.add_parser(
        "prune",
        help="remove caches of deleted or long-unused repositories, and old trajectories",
        description="Remove the caches whose repository no longer exists (--missing, the "
        "default) or that were not used for --older-than DAYS, and the trajectories older "
        "than trajectory_retention_days. A cache being written is kept.",
    )
    q.add_argument(
        "--older-than", type=float, metavar="DAYS", help="remove caches unused for DAYS days"
    )
    q.add_argument(
        "--missing",
        action="store_true",
        help="remove caches whose repository path no longer exists (the default when "
        "--older-than is not given)",
    )
    q.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    _settings(q, "cache_dir", "trajectory_dir", "trajectory_retention_days")


def build_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-mcp",
        description=(
            "Answer questions about whole code repositories with Recursive Language Models: "
            "an MCP server, and the same engine from the shell."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlm-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _serve(sub)
    _model_commands(sub)
    _index_commands(sub)
    _cache(sub)
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script generated from this parser. bash: add "
        "'source <(rlm-mcp completion bash)' to ~/.bashrc. zsh: "
        "'rlm-mcp completion zsh > \"${fpath[1]}/_rlm-mcp\"', then restart the shell.",
    )
    p.add_argument("shell", choices=("bash", "zsh"))
    return parser
