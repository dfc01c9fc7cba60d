"""The values a ``Session`` is configured with and hands back, shared by the host modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HostFunction = Callable[..., Any]


@dataclass(frozen=True)
class SessionConfig:
    """Limits and data for one sandboxed REPL session (see the package docstring)."""

    root: Path | None = None
    readable_paths: tuple[Path, ...] = ()
    lazy_text: Mapping[str, Path] = field(default_factory=dict)
    prelude: str = ""
    reserved: frozenset[str] = frozenset()
    exec_timeout: float = 30.0
    hard_timeout_grace: float = 5.0
    output_limit: int = 20_000
    memory_bytes: int | None = None
    cpu_seconds: int = 900
    max_host_calls: int = 100_000
    max_concurrent_host_calls: int = 4
    max_message_bytes: int = 8 * 1024 * 1024
    allow_unsafe: bool = False
    use_bwrap: bool | None = None

    def __post_init__(self) -> None:
        if self.max_concurrent_host_calls < 1:
            raise ValueError("max_concurrent_host_calls must be at least 1")


@dataclass(frozen=True)
class ExecResult:
    """What one cell produced; ``error`` also carries restart notices meant for the model."""

    stdout: str
    stderr: str
    error: str | None
    value: str | None
    truncated: bool
    timed_out: bool
    restarted: bool
    duration: float
