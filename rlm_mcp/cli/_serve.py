"""``rlm-mcp serve``: the MCP server over stdio or Streamable HTTP.

Before serving, the cache directory must be usable (every ``rlm_load`` would
fail otherwise) and an unusable trajectory directory only turns trajectories
off. Over HTTP the address is announced only once the port is bound and the
app has started; a busy port is a one-line error, exit code 3.
"""

from __future__ import annotations

import argparse
import logging

from rlm_mcp.cli._common import (
    EXIT_OK,
    Ctx,
    Failure,
    UsageError,
    check_cache_dir,
    say,
    without_unusable_trajectories,
)

log = logging.getLogger("rlm_mcp")


async def cmd_serve(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.server import create_server
    from rlm_mcp.service import RlmService

    if args.transport == "http" and not 0 <= args.port < 65536:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    check_cache_dir(ctx.config)
    config = without_unusable_trajectories(ctx)
    settings = config.settings
    server = create_server(
        settings, service_factory=lambda: RlmService(settings, limits=config.limits)
    )
    if args.transport == "stdio":
        log.info("serving MCP over stdio")
        await server.run_stdio_async()
        return EXIT_OK
    from rlm_mcp.http import serve_http

    try:
        await serve_http(
            server,
            host=args.host,
            port=args.port,
            auth_token=config.auth_token,
            allowed_origins=args.allowed_origin,
            allowed_hosts=args.allowed_host,
            log_level=config.log_level,
            on_listening=lambda url: say(f"rlm-mcp: serving MCP over Streamable HTTP at {url}"),
        )
    except (OSError, RuntimeError) as exc:
        raise Failure(str(exc)) from None
    return EXIT_OK
