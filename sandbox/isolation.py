"""Which isolation layers this machine offers, probed once per process.

The probes are cheap (two syscalls and one short bubblewrap run) and side-effect free; the
worker reports separately which layers it actually applied, and the host checks both.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from sandbox import _lockdown

logger = logging.getLogger(__name__)

CORE_LAYERS = ("rlimits", "no_new_privs", "landlock", "seccomp")
ALL_LAYERS = (*CORE_LAYERS, "bwrap")


@dataclass(frozen=True)
class IsolationReport:
    """Availability (from ``detect_isolation``) or application (``Session.isolation``) of layers."""

    rlimits: bool = False
    no_new_privs: bool = False
    landlock: bool = False
    landlock_abi: int = 0
    seccomp: bool = False
    bwrap: bool = False
    errors: tuple[str, ...] = field(default=())

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name in ALL_LAYERS if not getattr(self, name))

    @property
    def missing_core(self) -> tuple[str, ...]:
        """Layers without which a session refuses to start (bubblewrap is an extra)."""
        return tuple(name for name in CORE_LAYERS if not getattr(self, name))

    @property
    def level(self) -> str:
        if not self.missing:
            return "full"
        if any(getattr(self, name) for name in ALL_LAYERS):
            return "partial"
        return "none"

    def describe(self) -> str:
        parts = []
        for name in ALL_LAYERS:
            ok = bool(getattr(self, name))
            detail = f" (abi {self.landlock_abi})" if name == "landlock" and ok else ""
            parts.append(f"{name}={'yes' if ok else 'no'}{detail}")
        text = f"isolation {self.level}: " + ", ".join(parts)
        if self.errors:
            text += "; errors: " + "; ".join(self.errors)
        return text


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None
    )


def _bwrap_works(path: str) -> bool:
    cmd = [
        path,
        "--ro-bind", "/", "/",
        "--unshare-all", "--unshare-user",
        "--uid", "65534", "--gid", "65534",
        "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "true",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.info("bubblewrap probe failed: %s", exc)
        return False
    if proc.returncode != 0:
        logger.info("bubblewrap probe failed: %s", proc.stderr.decode(errors="replace")[:500])
    return proc.returncode == 0


@functools.cache
def detect_isolation() -> IsolationReport:
    """Probe (once per process) which isolation layers can be applied on this machine."""
    try:
        import resource

        resource.getrlimit(resource.RLIMIT_AS)
        rlimits = True
    except (ImportError, OSError, ValueError):
        rlimits = False
    abi = _lockdown.landlock_abi()
    path = bwrap_path()
    report = IsolationReport(
        rlimits=rlimits,
        no_new_privs=_lockdown.no_new_privs_available(),
        landlock=abi >= 1,
        landlock_abi=abi,
        seccomp=_lockdown.seccomp_available(),
        bwrap=path is not None and _bwrap_works(path),
    )
    logger.debug("%s", report.describe())
    return report
