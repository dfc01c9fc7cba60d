from cli_helpers import env, llm, repo

__all__ = ["env", "llm", "repo"]
