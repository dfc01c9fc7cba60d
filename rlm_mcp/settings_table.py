"""The table of every setting (:data:`SETTINGS`): name, variable, flag, kind, default, help.

The CLI builds its flags from it, :mod:`rlm_mcp.settings_loader` reads the
environment and the config file with it, and ``docs/configuration.md`` is
generated from it (:func:`render_markdown_table`), so the three cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_mcp.budget import LIMIT_FIELDS
from rlm_mcp.config import DEFAULT_CONTEXT_WINDOW

__all__ = ["BY_NAME", "LIMIT_NAMES", "SETTINGS", "Setting", "render_markdown_table"]

LIMIT_NAMES = tuple(f.name for f in LIMIT_FIELDS)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its name (also the config-file key), variable, flag, kind and help.

    ``kind`` is one of ``str``, ``secret``, ``int``, ``float``, ``decimal``,
    ``bool``, ``path``, ``paths``, ``level``.
    """

    name: str
    env: str
    kind: str
    help: str
    default: str = ""
    flag: str | None = None


_GENERAL: tuple[Setting, ...] = (
    Setting(
        "model",
        "RLM_MODEL",
        "str",
        "Root model name (required for ask, review and rlm_query).",
        "",
        "--model",
    ),
    Setting(
        "base_url",
        "RLM_BASE_URL",
        "str",
        "OpenAI-compatible endpoint for the root model.",
        "OpenAI",
        "--base-url",
    ),
    Setting(
        "api_key",
        "RLM_API_KEY",
        "secret",
        "API key for the root endpoint; falls back to `OPENAI_API_KEY` when the endpoint is OpenAI's.",
    ),
    Setting(
        "context_window",
        "RLM_CONTEXT_WINDOW",
        "int",
        "Root model context window in tokens.",
        str(DEFAULT_CONTEXT_WINDOW),
    ),
    Setting(
        "temperature",
        "RLM_TEMPERATURE",
        "float",
        "Sampling temperature for the root model's calls (0 for reproducible runs).",
        "the provider's",
        "--temperature",
    ),
    Setting(
        "seed",
        "RLM_SEED",
        "int",
        "Seed sent with the root model's calls, where the provider supports one.",
        "none",
        "--seed",
    ),
    Setting(
        "strategy",
        "RLM_STRATEGY",
        "str",
        "How a query starts: `explore` (the root model searches freely from ranked "
        "candidates), `locate-first` (`repo.locate` runs first and the root model starts "
        "from its judged locations) or `locate-only` (the engine composes the answer from "
        "the judged locations with one root call).",
        "explore",
        "--strategy",
    ),
    Setting(
        "sub_model",
        "RLM_SUB_MODEL",
        "str",
        "Cheaper model for `llm_query` sub-calls.",
        "the root model",
        "--sub-model",
    ),
    Setting(
        "sub_base_url",
        "RLM_SUB_BASE_URL",
        "str",
        "Endpoint for the sub model.",
        "the root endpoint",
    ),
    Setting(
        "sub_api_key",
        "RLM_SUB_API_KEY",
        "secret",
        "API key for the sub endpoint.",
        "the root key when the endpoint is shared",
    ),
    Setting(
        "sub_context_window",
        "RLM_SUB_CONTEXT_WINDOW",
        "int",
        "Sub model context window in tokens.",
        str(DEFAULT_CONTEXT_WINDOW),
    ),
    Setting(
        "sub_temperature",
        "RLM_SUB_TEMPERATURE",
        "float",
        "Sampling temperature for the sub model's calls.",
        "the root's",
    ),
    Setting(
        "sub_seed",
        "RLM_SUB_SEED",
        "int",
        "Seed sent with the sub model's calls.",
        "the root's",
    ),
    Setting(
        "allowed_roots",
        "RLM_ALLOWED_ROOTS",
        "paths",
        "Directories `rlm_load` may load from (`os.pathsep`-separated in the variable, a list in the file). The CLI's own commands are not confined.",
        "your home directory",
        "--allow-root",
    ),
    Setting(
        "cache_dir",
        "RLM_CACHE_DIR",
        "path",
        "Where the per-repository SQLite index caches live.",
        "`$XDG_CACHE_HOME/rlm-mcp`",
        "--cache-dir",
    ),
    Setting(
        "index_url",
        "RLM_INDEX_URL",
        "secret",
        "A `postgresql://` URL: keep indexes in that shared database (many readers, one writer per repository) instead of SQLite files under `cache_dir`.",
        "none (SQLite)",
        "--index-url",
    ),
    Setting(
        "trajectory_dir",
        "RLM_TRAJECTORY_DIR",
        "path",
        "Where query trajectories (JSON Lines) are written; `off` writes none.",
        "`$XDG_STATE_HOME/rlm-mcp/trajectories`",
        "--trajectory-dir",
    ),
    Setting(
        "load_wait_seconds",
        "RLM_LOAD_WAIT_SECONDS",
        "float",
        "Seconds `rlm_load` waits for a load before it returns the load's status "
        "(`loading`, files stored, files in all) and lets it go on in the background.",
        "2",
    ),
    Setting(
        "session_ttl_seconds",
        "RLM_SESSION_TTL_SECONDS",
        "float",
        "Seconds an unused session (a REPL kept for follow-ups) lives.",
        "1800",
    ),
    Setting(
        "max_sessions",
        "RLM_MAX_SESSIONS",
        "int",
        "Most live sessions; beyond it the least recently used idle one ends.",
        "32",
    ),
    Setting(
        "max_result_tokens",
        "RLM_MAX_RESULT_TOKENS",
        "int",
        "Most tokens (about four characters each) one MCP tool response carries, all its blocks counted; list-shaped tools page with `cursor` beyond it.",
        "20000",
    ),
    Setting(
        "structured_output",
        "RLM_STRUCTURED_OUTPUT",
        "str",
        "MCP `structuredContent`: `auto` (a text rendering plus `structuredContent`), `on` (also the JSON as a second text block), `off` (the rendering only, no output schemas).",
        "auto",
    ),
    Setting(
        "trajectory_retention_days",
        "RLM_TRAJECTORY_RETENTION_DAYS",
        "int",
        "Days `rlm-mcp cache prune` keeps trajectories; 0 keeps them forever.",
        "30",
        "--trajectory-retention-days",
    ),
    Setting(
        "max_file_bytes",
        "RLM_MAX_FILE_BYTES",
        "int",
        "Files larger than this are skipped as `too_large`.",
        "1048576",
    ),
    Setting(
        "no_watch",
        "RLM_NO_WATCH",
        "bool",
        "Do not watch loaded repositories for changes.",
        "false",
        "--no-watch",
    ),
    Setting(
        "log_level",
        "RLM_LOG_LEVEL",
        "level",
        "Logging level (logs go to stderr).",
        "WARNING",
        "--log-level",
    ),
    Setting(
        "log_format",
        "RLM_LOG_FORMAT",
        "str",
        "`text` (`time LEVEL logger: message`, then `[trace=... span=...]` inside a traced "
        "request) or `json` (one object per line: time, level, logger, message, trace_id, "
        "span_id, exception), for log shippers.",
        "text",
        "--log-format",
    ),
    Setting(
        "auth_token",
        "RLM_AUTH_TOKEN",
        "secret",
        "Bearer token the HTTP transport requires (`Authorization: Bearer ...`).",
        "none",
        "--auth-token",
    ),
    Setting(
        "sandbox_unsafe",
        "RLM_SANDBOX_UNSAFE",
        "bool",
        "Run model code without OS isolation when none is available. Unsafe: only for trusted models on throwaway machines.",
        "false",
        "--unsafe-no-sandbox",
    ),
)
_KINDS = {"int": "int", "float": "float", "Decimal": "decimal"}
SETTINGS: tuple[Setting, ...] = _GENERAL + tuple(
    Setting(
        f.name,
        "RLM_" + f.name.upper(),
        _KINDS[str(f.type)],
        f.metadata["help"],
        str(f.default),
        "--" + f.name.replace("_", "-"),
    )
    for f in LIMIT_FIELDS
)
"""Every setting: the general ones above, then one per guardrail of :class:`Limits`."""
BY_NAME = {s.name: s for s in SETTINGS}


def render_markdown_table() -> str:
    """The configuration reference as Markdown (``docs/configuration.md``)."""
    lines = [
        "# Configuration",
        "",
        "rlm-mcp reads its settings from command-line flags, environment variables and an",
        "optional TOML file, in that order of precedence (flags win). The file is",
        "`--config FILE`, or `$XDG_CONFIG_HOME/rlm-mcp/config.toml` when it exists; its keys",
        "are the names in the first column, plus a `[prices]` table. An unknown key or a",
        "malformed value stops the command with exit code 2 and a message naming it.",
        "",
        "| Key (file) | Environment variable | Flag | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        flag = f"`{s.flag}`" if s.flag else ""
        lines.append(f"| `{s.name}` | `{s.env}` | {flag} | {s.default or '—'} | {s.help} |")
    lines += [
        "",
        "Limits (`max_*`, `exec_timeout_seconds`) are the server-wide guardrails; a query's",
        "own limits (the `limits` argument of `rlm_query`, the flags of `rlm-mcp ask`) can",
        "only tighten them. The HTTP transport also takes `--host`, `--port`,",
        "`--allowed-origin` and `--allowed-host` flags.",
        "",
        "## Example `config.toml`",
        "",
        "```toml",
        'model = "gpt-4.1"',
        'sub_model = "gpt-4.1-mini"',
        'allowed_roots = ["~/src", "~/work"]',
        "max_cost_usd = 0.50",
        "max_llm_calls = 40",
        'log_level = "INFO"',
        "",
        "[prices]  # USD per million tokens: [input, output]",
        '"my-local-model" = [0.0, 0.0]',
        "```",
        "",
    ]
    return "\n".join(lines)
