"""``rlm-mcp search``: regex or fixed-string search with ripgrep's flags where they fit.

The index's grep returns up to :data:`~rlm_mcp.index.search.searcher.MAX_GREP_RESULTS`
hits; this command asks for all of them once, so it can report the total,
page with ``--offset`` and still exit 1 only when nothing matched. Files the
index skipped (too large, generated, minified, binary) are never searched;
when nothing matches, or with ``-v``, the command says how many were skipped
and how to include them, so "no matches" never hides a file the user expected.

A first search of a tree not yet indexed (no cache, or another process is
writing it) with at least :data:`SCAN_MIN_FILES` files does not wait for the
cold index: it answers from a direct scan of the files on disk
(:mod:`~rlm_mcp.index.search.scan`: ripgrep picks, Python's ``re`` confirms),
says so on stderr (``"source": "scan"`` with ``--json``), and starts ``rlm-mcp
index`` in the background so the next search uses the index. Ctrl-C kills the
grep helper and ripgrep at once, however slow the regex.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from rlm_mcp.cli._common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    Bar,
    Ctx,
    UsageError,
    dump,
    make_service,
    one_shot,
    paint,
    remember_root,
    say,
)

if TYPE_CHECKING:
    from rlm_mcp.index import Repository
    from rlm_mcp.index.search.globs import PathFilter
    from rlm_mcp.index.search.grep import GrepHit
    from rlm_mcp.service import LoadSummary, RlmService

T = TypeVar("T")

SCAN_MIN_FILES = 100
"""A cold tree with fewer candidate files is indexed (up to its texts) before the search:
it takes about as long as starting the scan, and the search then reports what the index
skipped. A cold load costs about 1.5 s even at 167 files (the parser processes' start-up)
where the scan answers in about 0.25 s."""
PATH_COLOR, LINE_COLOR, MATCH_COLOR = "35", "32", "1;31"
"""ripgrep's colours: magenta paths, green line numbers, bold red matches."""

_REMEDY = {
    "too_large": "over {max_bytes:,} bytes; raise RLM_MAX_FILE_BYTES (e.g. "
    "RLM_MAX_FILE_BYTES={bigger}) to index them",
    "generated": "lock files and generated code are not indexed; name one as PATH to search "
    "it anyway (e.g. rlm-mcp search {example} PATTERN)",
    "minified": "minified files are not indexed; name one as PATH to search it anyway "
    "(e.g. rlm-mcp search {example} PATTERN)",
    "binary": "binary files are never searched",
}


def _page_note(offset: int, shown: int, total: int, capped: bool) -> str:
    of = f"at least {total:,}" if capped else f"{total:,}"
    return (
        f"rlm-mcp: showing hits {offset + 1:,}-{offset + shown:,} of {of}; "
        f"--offset {offset + shown} for the next page, or raise --max-results"
    )


def skipped_note(summary: LoadSummary, glob: str | PathFilter | None, max_bytes: int) -> list[str]:
    """What the load skipped (files a search could not see), and how to include it."""
    from rlm_mcp.index.search.grep import glob_regex

    files = summary.skipped_files
    if glob:
        rx = glob_regex(glob)
        files = [f for f in files if rx.match(f.path)]
        by_reason: dict[str, int] = {}
        for f in files:
            by_reason[f.reason] = by_reason.get(f.reason, 0) + 1
    else:
        by_reason = dict(summary.skipped)
    total = sum(by_reason.values())
    if not total:
        return []
    lines = [
        f"rlm-mcp: {total:,} file{'s' if total != 1 else ''} not searched (skipped at indexing):"
    ]
    sizes = [int(m.group(1)) for f in files if (m := re.match(r"(\d+) bytes", f.detail))]
    bigger = max([max_bytes * 4, *sizes]) + 1
    for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        example = next((f.path for f in files if f.reason == reason), "FILE")
        template = _REMEDY.get(reason, "")
        remedy = template.format(
            example=Path(summary.root) / example, max_bytes=max_bytes, bigger=bigger
        )
        lines.append(f"  {reason} {n:,}" + (f": {remedy}" if remedy else f" (e.g. {example})"))
    return lines


# -- arguments ------------------------------------------------------------------------


def _words(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """PATH and the patterns: ``[PATH] PATTERN``, or every word a PATH with ``-e``.

    ``PATTERN PATH`` (ripgrep's order) is taken when only the second word names
    something on disk.
    """
    words: list[str] = list(args.words)
    if args.regexp:
        if len(words) > 1:
            raise UsageError(f"search takes one PATH; got {len(words)}: {' '.join(words)}")
        return Path(words[0] if words else "."), list(args.regexp)
    if not words:
        raise UsageError("search needs a PATTERN (or -e PATTERN)")
    if len(words) == 1:
        return Path("."), words
    if len(words) > 2:
        raise UsageError("search takes [PATH] PATTERN; use -e for several patterns")
    first, second = words
    if not os.path.lexists(first) and os.path.lexists(second):
        first, second = second, first
    return Path(first), [second]


def _source(patterns: list[str], fixed: bool, word: bool) -> str:
    """One Python regex for ``patterns`` (any of them), escaped with ``-F``, whole words with
    ``-w``."""
    if any(p == "" for p in patterns) and not word:
        raise UsageError("the search pattern is empty")
    parts = [re.escape(p) if fixed else p for p in patterns]
    source = parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)
    return rf"(?<!\w)(?:{source})(?!\w)" if word else source


def _filter(args: argparse.Namespace) -> PathFilter | None:
    from rlm_mcp.index.search.globs import FILE_TYPES, PathFilter

    globs = list(args.glob or [])
    for t in args.type_not:
        if t not in FILE_TYPES:
            raise UsageError(f"unknown file type {t!r}; rlm-mcp search --type-list lists them")
        globs += [f"!{g}" for g in FILE_TYPES[t]]
    for t in args.type:
        if t not in FILE_TYPES:
            raise UsageError(f"unknown file type {t!r}; rlm-mcp search --type-list lists them")
    if not globs and not args.type:
        return None
    return PathFilter(tuple(globs), tuple(args.type))


def _color(args: argparse.Namespace, ctx: Ctx) -> bool:
    if args.color != "auto":
        return bool(args.color == "always")
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and "NO_COLOR" not in ctx.env and ctx.env.get("TERM", "") != "dumb"


# -- running, interruptibly ---------------------------------------------------------------


async def _interruptible(fn: Callable[[], T], stop: Callable[[], None]) -> T:
    """``fn()`` in a worker thread; a cancellation (Ctrl-C) calls ``stop`` at once, which ends
    the thread (it kills the grep helper and ripgrep) instead of waiting for the regex."""
    result: list[T] = []
    error: list[BaseException] = []
    done = anyio.Event()

    async def run() -> None:
        try:
            result.append(await anyio.to_thread.run_sync(fn))
        except Exception as exc:
            error.append(exc)
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            stop()
            raise
    if error:
        raise error[0]
    return result[0]


def _searching(exc: Exception) -> Exception:
    from rlm_mcp.errors import SearchError

    return UsageError(str(exc)) if isinstance(exc, SearchError) else exc


async def _on_index(ctx: Ctx, path: Path, work: Callable[[Repository], T]) -> tuple[T, LoadSummary]:
    """Load ``path`` (one-shot) and run ``work`` on it; Ctrl-C stops its grep at once."""
    service = make_service(one_shot(ctx.config))
    try:
        summary = await _load_texts(service, path, ctx)
        repo = service.get().repo
        try:
            out = await _interruptible(lambda: work(repo), repo.searcher.interrupt_grep)
        except Exception as exc:
            raise _searching(exc) from None
    finally:
        await service.aclose()
    return out, summary


async def _load_texts(service: RlmService, path: Path, ctx: Ctx) -> LoadSummary:
    """Load ``path`` up to its texts (what grep reads), not its symbols: a search never waits
    for tree-sitter. The rest of a cold index resumes at the next load that needs it."""
    bar = Bar(sys.stderr, "indexing", ctx.stderr_tty)
    try:
        loaded, summary = await service.load(path, progress=bar, confine=False, background=True)
    finally:
        bar.close()
    await anyio.to_thread.run_sync(remember_root, loaded.repo, path)
    return summary


def _cold(ctx: Ctx, path: Path) -> bool:
    """Whether ``path`` has no index yet: no SQLite cache, or another process is writing it."""
    import fcntl

    from rlm_mcp.config import default_cache_dir
    from rlm_mcp.index.store.sqlite import db_path_for

    settings = ctx.config.settings.index
    if settings.index_url:
        return False
    cache = settings.cache_dir if settings.cache_dir is not None else default_cache_dir(ctx.env)
    try:
        db = db_path_for(Path(cache), path.expanduser().resolve(strict=True))
    except OSError:
        return False
    if not db.exists():
        return True
    try:
        fd = os.open(str(db) + ".lock", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _index_in_background(args: argparse.Namespace, ctx: Ctx, path: Path) -> int | None:
    """Start ``rlm-mcp index PATH`` detached (its own session, no terminal); its pid."""
    argv = [sys.executable, "-P", "-m", "rlm_mcp", "index", str(path.resolve())]
    for flag, value in (("--config", args.config), ("--cache-dir", args.cache_dir)):
        if value is not None:
            argv += [flag, str(value)]
    try:
        proc = subprocess.Popen(
            argv,
            env=dict(ctx.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return None
    return proc.pid


async def _scan(
    ctx: Ctx, path: Path, source: str, flags: int, glob: PathFilter | None, context: int
) -> tuple[list[GrepHit], int, int, str] | None:
    """The direct scan of a cold tree: hits, files considered, total, engine (None: index)."""
    import rlm_mcp.index.search.ripgrep as ripgrep
    from rlm_mcp.index.search.grepworker import GrepWorker
    from rlm_mcp.index.search.scan import disk_grep

    worker = GrepWorker()

    def stop() -> None:
        worker.interrupt()
        ripgrep.interrupt()

    def work() -> Any:
        return disk_grep(
            path,
            source,
            flags=flags,
            glob=glob,
            context=context,
            settings=ctx.config.settings.index,
            worker=worker,
            min_files=SCAN_MIN_FILES,
        )

    try:
        found = await _interruptible(work, stop)
    except Exception as exc:
        raise _searching(exc) from None
    finally:
        worker.close()
    if found is None:
        return None
    hits, page = found
    return hits, page.files, page.total, page.engine


# -- output ---------------------------------------------------------------------------


class _Printer:
    """ripgrep's layout and colours: ``path:line:text`` hits, ``path-line-text`` context.

    Matches are highlighted by running the regex again here, outside the killable grep
    helper, so only for a regex that cannot backtrack exponentially (on a line the helper
    already matched, clipped to 300 characters).
    """

    def __init__(self, color: bool, source: str, flags: int) -> None:
        from rlm_mcp.index.search.literals import backtracks_linearly

        self.color = color
        self.rx = (
            re.compile(source, flags) if color and backtracks_linearly(source, flags) else None
        )

    def path(self, path: str) -> str:
        return paint(path, PATH_COLOR, self.color)

    def line(self, path: str, no: int, text: str, hit: bool) -> str:
        sep = ":" if hit else "-"
        if not self.color:
            return f"{path}{sep}{no}{sep}{text}"
        if hit and self.rx is not None:
            text = self.rx.sub(lambda m: paint(m.group(0), MATCH_COLOR, True), text)
        return f"{self.path(path)}{sep}{paint(str(no), LINE_COLOR, True)}{sep}{text}"

    def hits(self, hits: list[GrepHit], around: list[tuple[list[str], list[str]]]) -> None:
        """A hit inside another's context stays a hit; ``--`` between groups that do not touch."""
        if not around:
            for h in hits:
                print(self.line(h.path, h.line, h.text, True))
            return
        groups: dict[str, tuple[dict[int, str], dict[int, str]]] = {}
        for hit, (before, after) in zip(hits, around, strict=True):
            lines, matched = groups.setdefault(hit.path, ({}, {}))
            first = hit.line - len(before)
            lines.update((first + k, t) for k, t in enumerate(before))
            lines.update((hit.line + 1 + k, t) for k, t in enumerate(after))
            matched[hit.line] = hit.text
        started = False
        for path, (lines, matched) in groups.items():
            prev: int | None = None
            for no in sorted(lines.keys() | matched.keys()):
                if (prev is None and started) or (prev is not None and no > prev + 1):
                    print("--")
                is_hit = no in matched
                print(self.line(path, no, matched[no] if is_hit else lines[no], is_hit))
                prev, started = no, True


def _context(
    repo: Repository, hits: list[GrepHit], before: int, after: int
) -> list[tuple[list[str], list[str]]]:
    """For each hit, the lines before and after it, as the indexed text has them."""
    texts: dict[str, list[str]] = {}
    out: list[tuple[list[str], list[str]]] = []
    for h in hits:
        if h.path not in texts:
            text = repo.text(h.path)
            texts[h.path] = [ln.rstrip("\r") for ln in text.removesuffix("\n").split("\n")]
        lines = texts[h.path]
        i = h.line - 1
        out.append((lines[max(0, i - before) : i] if before else [], lines[i + 1 : i + 1 + after]))
    return out


def _hit_json(hit: GrepHit, context: tuple[list[str], list[str]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": hit.path, "line": hit.line, "text": hit.text}
    if context is not None:
        out["before"], out["after"] = context
    return out


def _per_file(hits: list[GrepHit]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in hits:
        counts[h.path] = counts.get(h.path, 0) + 1
    return counts


def _checked_window(args: argparse.Namespace) -> tuple[int, int]:
    """The lines of context before and after a hit (``-B``/``-A``, else ``-C``), once
    ``--max-results``, ``--offset`` and the context options are checked."""
    if args.max_results < 1:
        raise UsageError("--max-results must be at least 1")
    if args.offset < 0:
        raise UsageError("--offset must be 0 or more")
    before = args.before_context if args.before_context is not None else args.context
    after = args.after_context if args.after_context is not None else args.context
    if min(before, after, args.context) < 0:
        raise UsageError("--context, -A and -B must be 0 or more")
    return before, after


def _print_listing(
    args: argparse.Namespace, printer: _Printer, hits: list[GrepHit], capped: bool
) -> None:
    """``--files-with-matches`` or ``--count``: the files with hits, or their counts."""
    total = len(hits)
    counts = _per_file(hits)
    if args.json:
        key = "counts" if args.count else "files"
        listed: Any = counts if args.count else list(counts)
        dump({key: listed, "total": total, "total_is_lower_bound": capped})
    else:
        for p, n in counts.items():
            print(f"{printer.path(p)}:{n}" if args.count else printer.path(p))
    if capped:
        say(f"rlm-mcp: stopped at {total:,} matching lines; the counts are lower bounds")


async def cmd_search(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.index.search.grep import MAX_GREP_RESULTS

    if args.type_list:
        from rlm_mcp.index.search.globs import type_list

        for line in type_list():
            print(line)
        return EXIT_OK
    before, after = _checked_window(args)
    path, patterns = _words(args)
    source = _source(patterns, args.fixed_strings, args.word_regexp)
    flags = re.MULTILINE | (re.IGNORECASE if args.ignore_case else 0)
    glob = _filter(args)
    listing = args.files_with_matches or args.count
    window = (0, MAX_GREP_RESULTS) if listing else (args.offset, args.max_results)
    scanned = (
        await _scan(ctx, path, source, flags, glob, max(before, after))
        if _cold(ctx, path)
        else None
    )
    summary: LoadSummary | None = None
    if scanned is not None:
        hits, files, _, engine = scanned
        version: int | None = None
        page = hits[window[0] : window[0] + window[1]]
        around = [(list(h.before[-before:] if before else ()), list(h.after[:after])) for h in page]
        around = around if before or after else []
        pid = _index_in_background(args, ctx, path)
        background = f"indexing in the background (pid {pid})" if pid else "not indexing it"
        say(
            f"rlm-mcp: {path} is not indexed yet: answered from a direct scan of {files:,} "
            f"files ({engine}); {background}, so the next search uses the index"
        )
    else:

        def work(repo: Repository) -> tuple[list[GrepHit], int | None, list[Any]]:
            found = repo.grep(source, glob, MAX_GREP_RESULTS, args.ignore_case)
            page = found[window[0] : window[0] + window[1]]
            around = _context(repo, page, before, after) if before or after else []
            return found, repo.version, [page, around]

        (hits, version, parts), summary = await _on_index(ctx, path, work)
        page, around = parts
    total, capped = len(hits), len(hits) >= MAX_GREP_RESULTS
    printer = _Printer(_color(args, ctx), source, flags)
    if listing:
        _print_listing(args, printer, hits, capped)
    else:
        more = capped or args.offset + len(page) < total
        if args.json:
            dump(
                {
                    "hits": [
                        _hit_json(h, around[i] if around else None) for i, h in enumerate(page)
                    ],
                    "truncated": more,
                    "total": total,
                    "total_is_lower_bound": capped,
                    "offset": args.offset,
                    "index_version": version,
                    "source": "scan" if scanned is not None else "index",
                }
            )
        else:
            printer.hits(page, around)
        if more and page:
            say(_page_note(args.offset, len(page), total, capped))
        elif total and not page:
            say(f"rlm-mcp: no hits at --offset {args.offset}: there are {total:,}")
    if summary is not None and (not total or args.verbose):
        if not total:
            say(f"rlm-mcp: no matches in {summary.files:,} indexed files of {summary.root}")
        max_bytes = ctx.config.settings.index.max_file_bytes
        for line in skipped_note(summary, glob, max_bytes):
            say(line)
    return EXIT_OK if total else EXIT_NEGATIVE
