"""The package version, in a module that imports nothing (``rlm-mcp --help`` reads it)."""

__version__ = "0.1.0"
