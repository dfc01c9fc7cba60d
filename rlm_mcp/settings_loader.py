"""Settings from flags, environment variables and a TOML file, in that order of precedence.

The table :data:`SETTINGS` is the single description of every setting: the CLI
builds its flags from it, the loader reads the environment and the file with
it, and ``docs/configuration.md`` is generated from it, so the three cannot
drift apart. Nothing here reads ``os.environ``: the CLI passes the
environment in, which keeps this module pure and testable.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlm_mcp.budget import Limits
from rlm_mcp.config import (
    DEFAULT_CONTEXT_WINDOW,
    IndexSettings,
    ModelEndpoint,
    OutputSettings,
    SandboxSettings,
    SessionSettings,
    Settings,
)
from rlm_mcp.errors import ConfigError
from rlm_mcp.settings_table import (
    BY_NAME,
    LIMIT_NAMES,
    SETTINGS,
    Setting,
    render_markdown_table,
)

__all__ = [
    "LIMIT_NAMES",
    "SETTINGS",
    "Config",
    "Setting",
    "default_config_path",
    "load_config",
    "render_markdown_table",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DISABLED = {"off", "none", "-"}


@dataclass(frozen=True, slots=True)
class Config:
    """What the CLI needs: the frozen settings plus the values that live outside them."""

    settings: Settings
    limits: Limits
    log_level: str = "WARNING"
    log_format: str = "text"
    auth_token: str | None = field(default=None, repr=False)
    config_file: Path | None = None
    trajectory_retention_days: int = 30


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/rlm-mcp/config.toml`` (``~/.config`` when unset)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "rlm-mcp" / "config.toml"


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    home = Path(env.get("HOME") or Path.home())
    return Path(env.get(var) or str(home / fallback)) / "rlm-mcp"


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, tuple[Decimal, Decimal]]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    raw_prices = data.pop("prices", {})
    unknown = sorted(k for k in data if k not in BY_NAME)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {path}: {', '.join(unknown)}; "
            f"known keys: {', '.join([*BY_NAME, 'prices'])}"
        )
    if not isinstance(raw_prices, dict):
        raise ConfigError(f'{path}: [prices] must be a table of "model" = [input, output]')
    prices: dict[str, tuple[Decimal, Decimal]] = {}
    for model, pair in raw_prices.items():
        where = f"{path}: prices.{model!r}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where} must be [input, output] USD per million tokens")
        try:
            nums = [Decimal(str(p)) for p in pair if not isinstance(p, bool)]
        except InvalidOperation:
            nums = []
        if len(nums) != 2 or any(n < 0 for n in nums):
            raise ConfigError(f"{where} must be two non-negative numbers, got {pair!r}")
        prices[model] = (nums[0], nums[1])
    return data, prices


class _Expected(Exception):
    """A raw value of the wrong shape; carries what the setting expects."""


def _to_str(value: Any) -> str | None:
    if not isinstance(value, str):
        raise _Expected("a string")
    return value.strip() or None


def _to_level(value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in LOG_LEVELS:
        raise _Expected("one of " + ", ".join(LOG_LEVELS))
    return value.strip().upper()


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE | {""}:
        return value.strip().lower() in _TRUE
    raise _Expected("a boolean (true/false, 1/0, yes/no)")


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if not text.lstrip("-").isdigit():
            raise _Expected("an integer")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Expected("an integer")
    return value


def _to_number(decimal: bool) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise _Expected("a number")
        try:
            return Decimal(str(value).strip()) if decimal else float(value)
        except (InvalidOperation, ValueError, TypeError):
            raise _Expected("a number") from None

    return convert


def _to_path(value: Any) -> Path | None:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise _Expected("a path")
    return None if str(value).strip().lower() in _DISABLED else Path(value).expanduser()


def _to_paths(value: Any) -> tuple[Path, ...]:
    if isinstance(value, str):
        parts = [p for p in value.split(os.pathsep) if p.strip()]
    elif isinstance(value, list | tuple) and all(isinstance(p, str | Path) for p in value):
        parts = [str(p) for p in value]
    else:
        raise _Expected("a list of paths")
    return tuple(Path(p).expanduser() for p in parts)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "secret": _to_str,
    "level": _to_level,
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_number(decimal=False),
    "decimal": _to_number(decimal=True),
    "path": _to_path,
    "paths": _to_paths,
}


def _convert(s: Setting, value: Any, source: str) -> Any:
    """Turn a raw value (a string from the environment, a TOML value) into the setting's type."""
    try:
        return _CONVERTERS[s.kind](value)
    except _Expected as exc:
        raise ConfigError(f"{source}: {s.name} must be {exc}, got {value!r}") from None


def _resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    file_label: str,
) -> dict[str, Any]:
    """Each setting's value from the first source that has it: flag, variable, file."""
    out: dict[str, Any] = {}
    for s in SETTINGS:
        flag_value = flags.get(s.name)
        if flag_value is not None and flag_value != [] and flag_value != ():
            out[s.name] = _convert(s, flag_value, s.flag or s.name)
        elif env.get(s.env, "").strip():
            out[s.name] = _convert(s, env[s.env], s.env)
        elif s.name in file_values:
            out[s.name] = _convert(s, file_values[s.name], file_label)
    return out


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or (urlparse(base_url).hostname or "") == "api.openai.com"


STRATEGIES = ("explore", "locate-first", "locate-only")


def _endpoint(
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    window: int | None,
    who: str,
    sampling: tuple[float | None, int | None] = (None, None),
) -> ModelEndpoint | None:
    if model is None:
        return None
    if window is not None and window <= 0:
        raise ConfigError(f"{who} context window must be positive, got {window}")
    if base_url is not None and urlparse(base_url).scheme not in ("http", "https"):
        raise ConfigError(f"{who} base URL must start with http:// or https://, got {base_url!r}")
    temperature, seed = sampling
    if temperature is not None and not 0 <= temperature <= 2:
        raise ConfigError(f"{who} temperature must be between 0 and 2, got {temperature}")
    return ModelEndpoint(
        model=model,
        base_url=base_url,
        api_key=api_key,
        context_window=window if window is not None else DEFAULT_CONTEXT_WINDOW,
        temperature=temperature,
        seed=seed,
    )


def _output(v: Mapping[str, Any]) -> OutputSettings:
    default = OutputSettings()
    tokens = v.get("max_result_tokens", default.max_result_tokens)
    if tokens < 1000:
        raise ConfigError(f"max_result_tokens must be at least 1000, got {tokens}")
    mode = str(v.get("structured_output", default.structured_output)).lower()
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"structured_output must be auto, on or off, got {mode!r}")
    return OutputSettings(max_result_tokens=tokens, structured_output=mode)


def load_config(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Build the settings; raises :class:`ConfigError` with a message fit for a terminal.

    Args:
        flags: setting name → value from the command line (``None`` when not given).
        env: the process environment.
        config_file: an explicit ``--config`` file (must exist); without it the
            default path is read when present.
    """
    path = config_file
    if path is None:
        default = default_config_path(env)
        path = default if default.is_file() else None
    elif not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    file_values, prices = _read_file(path) if path is not None else ({}, {})
    v = _resolve(flags, env, file_values, str(path))

    api_key = v.get("api_key")
    if api_key is None and _is_openai(v.get("base_url")):
        api_key = env.get("OPENAI_API_KEY") or None
    root_sampling = (v.get("temperature"), v.get("seed"))
    root = _endpoint(
        v.get("model"), v.get("base_url"), api_key, v.get("context_window"), "root", root_sampling
    )
    sub_base = v.get("sub_base_url") or v.get("base_url")
    sub_key = v.get("sub_api_key")
    if sub_key is None and sub_base == v.get("base_url"):
        sub_key = api_key
    sub_sampling = (
        v.get("sub_temperature", v.get("temperature")),
        v.get("sub_seed", v.get("seed")),
    )
    sub_model = v.get("sub_model")
    if sub_model is None and root is not None and sub_sampling != root_sampling:
        sub_model = root.model  # the root's model, sampled as the sub settings say
    sub = _endpoint(sub_model, sub_base, sub_key, v.get("sub_context_window"), "sub", sub_sampling)
    if sub is not None and root is None:
        raise ConfigError("RLM_SUB_MODEL is set but RLM_MODEL is not: set the root model too")
    strategy = str(v.get("strategy", "explore")).lower()
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"strategy must be one of {', '.join(STRATEGIES)}, got {v.get('strategy')!r}"
        )

    limits = Limits.from_mapping({k: v[k] for k in LIMIT_NAMES if k in v})
    max_file_bytes = v.get("max_file_bytes", IndexSettings().max_file_bytes)
    if max_file_bytes <= 0:
        raise ConfigError(f"max_file_bytes must be positive, got {max_file_bytes}")
    retention = v.get("trajectory_retention_days", 30)
    if retention < 0:
        raise ConfigError(f"trajectory_retention_days must be 0 or more, got {retention}")
    unsafe = bool(v.get("sandbox_unsafe", False))
    if unsafe and warn is not None:
        warn("the sandbox is disabled where no isolation is available (--unsafe-no-sandbox)")
    trajectory_dir = (
        v["trajectory_dir"]
        if "trajectory_dir" in v
        else _xdg(env, "XDG_STATE_HOME", ".local/state") / "trajectories"
    )
    index_url = v.get("index_url")
    if index_url is not None and urlparse(index_url).scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            "index_url must be a postgresql:// URL (e.g. postgresql://user@host/db), "
            f"got {urlparse(index_url).scheme or 'no scheme'}://..."
        )
    default_sessions = SessionSettings()
    sessions = SessionSettings(
        ttl_seconds=v.get("session_ttl_seconds", default_sessions.ttl_seconds),
        max_sessions=v.get("max_sessions", default_sessions.max_sessions),
    )
    if sessions.ttl_seconds <= 0 or sessions.max_sessions < 1:
        raise ConfigError("session_ttl_seconds must be positive and max_sessions at least 1")
    output = _output(v)
    load_wait = v.get("load_wait_seconds", Settings().load_wait_seconds)
    if load_wait < 0:
        raise ConfigError(f"load_wait_seconds must be 0 or more, got {load_wait}")
    settings = Settings(
        load_wait_seconds=load_wait,
        sessions=sessions,
        output=output,
        index=IndexSettings(
            max_file_bytes=max_file_bytes,
            cache_dir=v.get("cache_dir") or _xdg(env, "XDG_CACHE_HOME", ".cache"),
            watch=not v.get("no_watch", False),
            index_url=index_url,
            # A server on a shared index that watches nothing is a read replica: it
            # follows the writer's commits instead.
            follow_seconds=1.0 if index_url and v.get("no_watch", False) else 0.0,
        ),
        sandbox=SandboxSettings(allow_unsafe=unsafe),
        root_model=root,
        sub_model=sub,
        allowed_roots=v.get("allowed_roots", ()),
        trajectory_dir=trajectory_dir,
        prices_usd_per_mtok=prices,
        strategy=strategy,
    )
    log_format = str(v.get("log_format", "text")).lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, got {v.get('log_format')!r}")
    return Config(
        settings=settings,
        limits=limits,
        log_level=v.get("log_level", "WARNING"),
        log_format=log_format,
        auth_token=v.get("auth_token"),
        config_file=path,
        trajectory_retention_days=retention,
    )
