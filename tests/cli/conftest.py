from tests.cli.cli_helpers import env, repo

__all__ = ["env", "repo"]
