"""Benchmarks for rlm-mcp (run as modules, e.g. ``python -m benchmarks.eval``)."""
