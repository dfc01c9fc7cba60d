"""Settings come from flags, then the environment, then the TOML file, then defaults."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from rlm_mcp.errors import ConfigError
from rlm_mcp.settings_loader import (
    SETTINGS,
    default_config_path,
    load_config,
    render_markdown_table,
)
from tests.cli.cli_helpers import isolated_env, run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), **extra}


def _write_config(tmp_path: Path, text: str) -> Path:
    path = default_config_path(_env(tmp_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    _write_config(
        tmp_path,
        'model = "from-file"\nmax_llm_calls = 5\nmax_iterations = 7\nmax_depth = 0\n',
    )
    config = load_config(
        {"model": "from-flag", "max_llm_calls": None},
        _env(tmp_path, RLM_MODEL="from-env", RLM_MAX_LLM_CALLS="9", RLM_MAX_ITERATIONS="8"),
    )
    assert config.settings.root_model is not None
    assert config.settings.root_model.model == "from-flag"
    assert config.limits.max_llm_calls == 9
    assert config.limits.max_iterations == 8
    assert config.limits.max_depth == 0
    assert config.limits.max_concurrency == 8


def test_explicit_config_file_and_prices_table(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(
        'model = "m"\nallowed_roots = ["/srv/a", "/srv/b"]\nmax_cost_usd = 0.25\n'
        'no_watch = true\n[prices]\n"m" = [1.5, 6]\n'
    )
    config = load_config({}, _env(tmp_path), path)
    assert config.config_file == path
    assert config.settings.allowed_roots == (Path("/srv/a"), Path("/srv/b"))
    assert config.limits.max_cost_usd == Decimal("0.25")
    assert config.settings.index.watch is False
    assert config.settings.prices_usd_per_mtok == {"m": (Decimal("1.5"), Decimal("6"))}


def test_allowed_roots_variable_is_pathsep_separated(tmp_path: Path) -> None:
    value = os.pathsep.join(["/one", "/two"])
    config = load_config({}, _env(tmp_path, RLM_ALLOWED_ROOTS=value))
    assert config.settings.allowed_roots == (Path("/one"), Path("/two"))


def test_openai_key_is_used_only_for_openai_endpoints(tmp_path: Path) -> None:
    openai = load_config({}, _env(tmp_path, RLM_MODEL="m", OPENAI_API_KEY="sk-1"))
    assert openai.settings.root_model is not None and openai.settings.root_model.api_key == "sk-1"
    local = load_config(
        {},
        _env(tmp_path, RLM_MODEL="m", OPENAI_API_KEY="sk-1", RLM_BASE_URL="http://localhost:1/v1"),
    )
    assert local.settings.root_model is not None and local.settings.root_model.api_key is None


def test_sub_model_shares_the_root_endpoint_and_key(tmp_path: Path) -> None:
    config = load_config(
        {},
        _env(
            tmp_path,
            RLM_MODEL="big",
            RLM_SUB_MODEL="small",
            RLM_BASE_URL="http://h:1/v1",
            RLM_API_KEY="k",
            RLM_SUB_CONTEXT_WINDOW="32000",
        ),
    )
    sub = config.settings.sub_model
    assert sub is not None
    assert (sub.model, sub.base_url, sub.api_key, sub.context_window) == (
        "small",
        "http://h:1/v1",
        "k",
        32000,
    )


def test_defaults_use_xdg_directories(tmp_path: Path) -> None:
    config = load_config({}, _env(tmp_path, XDG_STATE_HOME=str(tmp_path / "state")))
    assert config.settings.trajectory_dir == tmp_path / "state" / "rlm-mcp" / "trajectories"
    assert config.settings.index.cache_dir == tmp_path / "home" / ".cache" / "rlm-mcp"
    assert config.settings.root_model is None
    assert config.log_level == "WARNING"
    off = load_config({}, _env(tmp_path, RLM_TRAJECTORY_DIR="off"))
    assert off.settings.trajectory_dir is None


@pytest.mark.parametrize(
    ("env", "file", "message"),
    [
        (
            {"RLM_MAX_LLM_CALLS": "lots"},
            None,
            "RLM_MAX_LLM_CALLS: max_llm_calls must be an integer",
        ),
        ({"RLM_MAX_COST_USD": "cheap"}, None, "max_cost_usd must be a number"),
        ({"RLM_NO_WATCH": "maybe"}, None, "no_watch must be a boolean"),
        ({"RLM_LOG_LEVEL": "LOUD"}, None, "log_level must be one of"),
        ({"RLM_MAX_ITERATIONS": "0"}, None, "max_iterations must be positive"),
        ({}, "modle = 'x'\n", "unknown key(s)"),
        ({}, "model = \n", "not valid TOML"),
        ({}, "[prices]\nm = [1]\n", "prices.'m'"),
    ],
)
def test_bad_configuration_is_a_clear_config_error(
    tmp_path: Path, env: dict[str, str], file: str | None, message: str
) -> None:
    if file is not None:
        _write_config(tmp_path, file)
    with pytest.raises(ConfigError) as raised:
        load_config({}, _env(tmp_path, **env))
    assert message in str(raised.value)


def test_bad_limit_exits_2_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    proc = run_cli("index", str(tmp_path), env=isolated_env(tmp_path, RLM_MAX_DEPTH="deep"))
    assert proc.returncode == 2
    assert "RLM_MAX_DEPTH: max_depth must be an integer, got 'deep'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_unknown_key_in_config_file_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("colour = 'blue'\n")
    proc = run_cli("index", str(tmp_path), "--config", str(cfg), env=isolated_env(tmp_path))
    assert proc.returncode == 2
    assert "unknown key(s)" in proc.stderr and "colour" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_explicit_config_file_exits_2(tmp_path: Path) -> None:
    proc = run_cli(
        "index", str(tmp_path), "--config", str(tmp_path / "nope.toml"), env=isolated_env(tmp_path)
    )
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr


def test_every_setting_has_a_variable_and_the_docs_are_current() -> None:
    assert all(s.env == "RLM_" + s.name.upper() for s in SETTINGS)
    docs = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert docs == render_markdown_table(), "regenerate docs/configuration.md"
