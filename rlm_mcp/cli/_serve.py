"""``rlm-mcp serve``: the MCP server over stdio or Streamable HTTP.

Over HTTP the OpenAI-compatible routes (``/v1``) share the port, the token and
the service (its loaded repositories) with ``/mcp``; ``--openai-only`` serves
them alone.

Before serving, the cache directory must be usable (every ``rlm_load`` would
fail otherwise) and an unusable trajectory directory only turns trajectories
off. Over HTTP the address is announced only once the port is bound and the
app has started; a busy port is a one-line error, exit code 3.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from rlm_mcp.cli._common import (
    EXIT_OK,
    Ctx,
    Failure,
    UsageError,
    check_cache_dir,
    say,
    without_unusable_trajectories,
)

if TYPE_CHECKING:
    from rlm_mcp.openai import OpenAIOptions

log = logging.getLogger("rlm_mcp")


async def cmd_serve(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.server import create_server
    from rlm_mcp.service import RlmService

    transport = args.transport or ("http" if args.openai_only else "stdio")
    if args.openai_only and transport != "http":
        raise UsageError("--openai-only serves HTTP: drop --transport stdio")
    if transport == "http" and not 0 <= args.port < 65536:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    options = _openai_options(args) if transport == "http" else None
    check_cache_dir(ctx.config)
    config = without_unusable_trajectories(ctx)
    settings = config.settings
    made: list[RlmService] = []

    def service() -> RlmService:
        """One service for /mcp and /v1; the MCP server's lifespan creates and closes it."""
        if not made:
            made.append(RlmService(settings, limits=config.limits))
        return made[0]

    server = None if args.openai_only else create_server(settings, service_factory=service)
    if transport == "stdio":
        assert server is not None
        log.info("serving MCP over stdio")
        await server.run_stdio_async()
        return EXIT_OK
    from rlm_mcp.http import serve_http

    what = "the OpenAI-compatible API" if server is None else "MCP over Streamable HTTP"
    try:
        await serve_http(
            server,
            host=args.host,
            port=args.port,
            auth_token=config.auth_token,
            allowed_origins=args.allowed_origin,
            allowed_hosts=args.allowed_host,
            log_level=config.log_level,
            on_listening=lambda url: say(f"rlm-mcp: serving {what} at {url}"),
            service=service,
            openai=options,
            trajectory_dir=settings.trajectory_dir,
        )
    except (OSError, RuntimeError) as exc:
        raise Failure(str(exc)) from None
    return EXIT_OK


def _openai_options(args: argparse.Namespace) -> OpenAIOptions:
    from rlm_mcp.errors import ConfigError
    from rlm_mcp.openai import OpenAIOptions

    if not args.openai_max_body_mb > 0:
        raise UsageError(f"--openai-max-body-mb must be positive, got {args.openai_max_body_mb}")
    try:
        return OpenAIOptions(
            max_body_bytes=int(args.openai_max_body_mb * 1024 * 1024),
            max_concurrent=args.openai_max_concurrent,
            max_messages=args.openai_max_messages,
            heartbeat_seconds=args.openai_heartbeat_seconds,
        )
    except ConfigError as exc:
        raise UsageError(f"--openai-{exc}".replace("_", "-")) from None
