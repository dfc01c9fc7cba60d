from tests.engine.engine_helpers import make_engine, small_repo

__all__ = ["make_engine", "small_repo"]
