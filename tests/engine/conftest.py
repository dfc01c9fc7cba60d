from engine_helpers import llm, make_engine, small_repo

__all__ = ["llm", "make_engine", "small_repo"]
