"""``python -m rlm_mcp``: the same as the ``rlm-mcp`` command."""

from rlm_mcp.cli import main

raise SystemExit(main())
