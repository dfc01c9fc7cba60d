"""What every command shares: exit codes, the terminal, the checks before work, loading.

Nothing here imports the service, the index or the engine at module level:
``rlm-mcp --help`` must stay fast, so heavy layers are imported inside the
functions that need them.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlparse

import anyio
import anyio.to_thread

from rlm_mcp.errors import SearchError
from rlm_mcp.settings_loader import Config

if TYPE_CHECKING:
    from rlm_mcp.index import Repository
    from rlm_mcp.service import LoadSummary, RlmService

log = logging.getLogger("rlm_mcp")
T = TypeVar("T")

EXIT_OK = 0
EXIT_NEGATIVE = 1
"""Nothing found (no hits, nothing indexed) or, for review, a finding of severity error."""
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad arguments, configuration or input files: exit code 2."""


class Failure(Exception):
    """The environment or a service failed (an unusable directory, a busy port): exit code 3."""


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a command gets besides its arguments: the settings and the terminal."""

    config: Config
    env: Mapping[str, str]
    stderr_tty: bool
    color: bool

    @classmethod
    def create(cls, config: Config, env: Mapping[str, str], stream: TextIO) -> Ctx:
        return cls(config, env, _isatty(stream), wants_color(env, stream))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def wants_color(env: Mapping[str, str], stream: TextIO) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set or ``TERM=dumb``."""
    return _isatty(stream) and "NO_COLOR" not in env and env.get("TERM", "") != "dumb"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def paint(text: str, code: str, color: bool) -> str:
    """``text`` in an ANSI colour when stderr is a terminal that wants colour."""
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def error_line(message: str, color: bool, label: str = "error") -> str:
    return f"rlm-mcp: {paint(label + ':', '1;31', color)} {message}"


def warn(ctx: Ctx, message: str) -> None:
    say(f"rlm-mcp: {paint('warning:', '1;33', ctx.color)} {message}")


def counts(mapping: Mapping[str, int]) -> str:
    items = sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v:,}" for k, v in items) or "none"


def endpoint_hint(message: str, config: Config) -> str | None:
    """Why a provider error happened, when the configuration makes it guessable.

    Ollama, llama.cpp and vLLM serve the OpenAI API under ``/v1``; a base URL
    without it gets 404 for ``/chat/completions`` and nothing else says why.
    """
    if "HTTP 404" not in message and " 404" not in message:
        return None
    s = config.settings
    for endpoint, var in ((s.root_model, "RLM_BASE_URL"), (s.sub_model, "RLM_SUB_BASE_URL")):
        url = endpoint.base_url if endpoint is not None else None
        if url and "/v1" not in (urlparse(url).path or ""):
            return (
                f"{url} answered 404: OpenAI-compatible servers (Ollama, llama.cpp, vLLM) serve "
                f"the API under /v1; try {var}={url.rstrip('/')}/v1"
            )
    return None


# -- checks before work --------------------------------------------------------------


def dir_problem(path: Path) -> str | None:
    """``None`` when ``path`` is (or can be made) a directory we can write in, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "it is a file, not a directory"
    except NotADirectoryError:
        return "one of its parents is a file, not a directory"
    except OSError as exc:
        return f"it cannot be created ({exc.strerror or exc})"
    if not path.is_dir():
        return "it is not a directory"
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"it is not writable ({exc.strerror or exc})"
    return None


def check_cache_dir(config: Config) -> None:
    cache_dir = config.settings.index.cache_dir
    if cache_dir is None:
        return
    problem = dir_problem(cache_dir)
    if problem:
        raise Failure(
            f"cannot use the cache directory {cache_dir}: {problem}; point RLM_CACHE_DIR "
            "(or --cache-dir) at a writable directory"
        )


def without_unusable_trajectories(ctx: Ctx) -> Config:
    """The config, minus the trajectory directory when it cannot be written (with a warning)."""
    config = ctx.config
    directory = config.settings.trajectory_dir
    if directory is None:
        return config
    problem = dir_problem(directory)
    if problem is None:
        return config
    warn(
        ctx,
        f"not writing trajectories: cannot use {directory} ({problem}); set RLM_TRAJECTORY_DIR "
        "to a writable directory, or to off",
    )
    return replace(config, settings=replace(config.settings, trajectory_dir=None))


# -- loading ----------------------------------------------------------------------------


def one_shot(config: Config) -> Config:
    """One-shot commands neither watch files nor confine paths."""
    settings = config.settings
    return replace(config, settings=replace(settings, index=replace(settings.index, watch=False)))


def make_service(config: Config) -> RlmService:
    from rlm_mcp.service import RlmService

    check_cache_dir(config)
    return RlmService(config.settings, limits=config.limits)


class Bar:
    """A one-line progress bar with the time left on a terminal; silent otherwise.

    A cold load reports three passes in turn (texts, text index, symbols), each
    counting files from zero: the bar starts over, with its own rate, for each.
    """

    def __init__(self, stream: TextIO, label: str, active: bool) -> None:
        self.stream = stream
        self.label = label
        self.active = active
        self.drawn = False
        self._pass = 0
        self._last = (0, 0)
        self._started = time.monotonic()

    async def __call__(self, done: int, total: int) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if total != self._last[1] or done < self._last[0]:
            self._pass += 1
            self._started = now
        self._last = (done, total)
        width = 30
        filled = width * done // total if total else width
        elapsed = now - self._started
        eta = ""
        if 0 < done < total and elapsed > 1:
            eta = f", about {elapsed * (total - done) / done:.0f}s left"
        self.stream.write(
            f"\r\x1b[K{self.label} (pass {self._pass}) [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:,}/{total:,} files{eta}"
        )
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


async def load(service: RlmService, path: Path, ctx: Ctx) -> LoadSummary:
    bar = Bar(sys.stderr, "indexing", ctx.stderr_tty)
    try:
        loaded, summary = await service.load(path, progress=bar, confine=False)
    finally:
        bar.close()
    await anyio.to_thread.run_sync(remember_root, loaded.repo, path)
    return summary


def remember_root(repo: Repository, path: Path) -> None:
    """Record in the cache which path it indexes, for ``rlm-mcp cache list`` and ``prune``.

    A stop-gap until the store records its root at load: it writes the meta key
    ``root`` through the store's own batch API, and only when it changed.
    """
    from rlm_mcp.index.discover.names import escape

    key = escape(str(Path(path).expanduser().resolve()))
    store = repo.store
    try:
        if store.meta("root") == key:
            return
        with store.writer(), store.batch() as batch:
            batch.set_meta("root", key)
    except Exception:
        log.debug("could not record the root of %s", store.location, exc_info=True)


async def on_repo(ctx: Ctx, path: Path, work: Callable[[Repository], T]) -> tuple[T, LoadSummary]:
    """Load ``path`` (one-shot), run ``work`` on it off the event loop, close everything."""
    service = make_service(one_shot(ctx.config))
    try:
        summary = await load(service, path, ctx)
        repo = service.get().repo
        try:
            out = await anyio.to_thread.run_sync(partial(work, repo))
        except SearchError as exc:
            raise UsageError(str(exc)) from None
    finally:
        await service.aclose()
    return out, summary


def relative_file(path: Path, file: str) -> str:
    """``file`` as the index names it: paths on disk under ``path`` become relative to it."""
    root = Path(path).expanduser().resolve()
    if root.is_file():
        root = root.parent
    candidate = Path(file).expanduser()
    if candidate.exists():
        resolved = candidate.resolve()
        if resolved.is_relative_to(root):
            return resolved.relative_to(root).as_posix()
    return file


def dump(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))
