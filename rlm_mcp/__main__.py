"""``python -m rlm_mcp``: the same as the ``rlm-mcp`` command."""

from rlm_mcp.cli import main

# The guard matters: the indexer's process pool (forkserver) re-imports the main
# module as ``__mp_main__``, which must not start the CLI a second time.
if __name__ == "__main__":
    raise SystemExit(main())
