"""Exceptions raised by the sandbox to its host (never to code inside the sandbox)."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox could not do what was asked (worker failed to start, session closed...)."""


class SandboxUnavailableError(SandboxError):
    """Isolation on this machine is weaker than required; refusing beats running unconfined."""
