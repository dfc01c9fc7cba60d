"""The model-free commands over one repository: index, find, symbols, references, callers,
outline, read and map. Each loads PATH (reusing the cache), asks the index and prints
text, or with ``--json`` the same object the matching MCP tool returns: both build it with
:mod:`rlm_mcp.schemas` (``partial`` is always null here: the CLI loads the index completely
before it answers).

``search --json`` (:mod:`rlm_mcp.cli._search`) is the one deliberate difference: its hits are
objects (``path``, ``line``, ``text``) where ``rlm_search`` returns ``"path:line:text"``
strings, because a shell consumer (``jq``) should not split strings on colons that paths and
code contain."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import rlm_mcp.schemas as schemas
from rlm_mcp.cli._common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    Ctx,
    UsageError,
    counts,
    dump,
    load,
    make_service,
    on_repo,
    one_shot,
    relative_file,
    say,
)
from rlm_mcp.errors import RepositoryNotFound, SearchError

if TYPE_CHECKING:
    from rlm_mcp.index import Repository
    from rlm_mcp.settings_loader import Config


def pin_commit(config: Config, path: Path, rev: str | None) -> tuple[Config, str]:
    """``config`` with the shared index pinned to ``rev`` of the checkout at ``path``.

    ``rev=None`` names the working tree's state (:func:`~rlm_mcp.index.store.open.worktree_commit`).
    """
    from rlm_mcp.index.store.open import resolve_commit, worktree_commit

    if not config.settings.index.index_url:
        raise UsageError("--commit pins a shared index: set --index-url or RLM_INDEX_URL")
    root = path.expanduser().resolve()
    root = root if root.is_dir() else root.parent
    try:
        sha = worktree_commit(root) if rev is None else resolve_commit(root, rev)
        if rev is not None and worktree_commit(root) != sha:
            raise UsageError(
                f"the working tree of {root} is not at {rev} ({sha[:12]}): check that commit "
                "out with no local changes, or index without --commit"
            )
    except RepositoryNotFound as exc:
        raise UsageError(str(exc)) from None
    index = replace(config.settings.index, commit=sha)
    return replace(config, settings=replace(config.settings, index=index)), sha


async def cmd_index(args: argparse.Namespace, ctx: Ctx) -> int:
    config, sha = ctx.config, None
    if args.commit is not None:
        config, sha = pin_commit(config, args.path, args.commit)
    service = make_service(one_shot(config))
    seeded: str | None = None
    try:
        summary = await load(service, args.path, ctx)
        if sha is not None:
            store = service.get().repo.store
            seeded = await anyio.to_thread.run_sync(store.meta, "seeded_from")
    finally:
        await service.aclose()
    if args.json:
        extra = {} if sha is None else {"commit": sha, "seeded_from": seeded}
        dump({**asdict(summary), **extra})
        return EXIT_OK
    print(
        f"indexed {summary.root}: {summary.files:,} files, {summary.tokens:,} tokens, "
        f"{summary.symbols:,} symbols in {summary.seconds:.2f}s "
        f"({summary.parsed:,} parsed, {summary.reused:,} reused from the cache)"
    )
    if sha is not None:
        base = seeded.rsplit("@", 1)[-1][:12] if seeded else None
        start = f"started from the index of {base}" if base else "no earlier commit was indexed"
        print(f"commit {sha[:12]}: {start}; {summary.parsed:,} changed files parsed")
    print(f"languages: {counts(summary.languages)}")
    print(f"skipped: {counts(summary.skipped)}")
    return EXIT_OK


def _positive(value: int, flag: str) -> None:
    if value < 1:
        raise UsageError(f"{flag} must be at least 1")


async def cmd_find(args: argparse.Namespace, ctx: Ctx) -> int:
    _positive(args.limit, "--limit")
    out, _ = await on_repo(
        ctx,
        args.path,
        lambda r: (
            r.search(args.query, args.limit, args.glob, exclude_tests=args.exclude_tests),
            r.version,
        ),
    )
    hits, version = out
    if args.json:
        dump(schemas.find_result(hits, version))
    else:
        for h in hits:
            print(h)
    return EXIT_OK if hits else EXIT_NEGATIVE


def _signature(d: Any) -> str:
    sig = d.signature.strip()
    return f": {sig}" if sig else ""


async def cmd_symbols(args: argparse.Namespace, ctx: Ctx) -> int:
    _positive(args.limit, "--limit")

    def work(r: Repository) -> tuple[list[Any], int, list[str]]:
        defs = r.symbols(args.query, args.kind, args.glob, args.match, args.limit)
        return defs, r.version, [] if defs else r.did_you_mean(args.query)

    (defs, version, close), _ = await on_repo(ctx, args.path, work)
    if args.json:
        dump(schemas.symbols_result(defs, version))
    else:
        for d in defs:
            print(f"{d.path}:{d.start_line}-{d.end_line}: {d.kind} {d.qualname}{_signature(d)}")
    if close:
        say(f"rlm-mcp: no symbol matches {args.query!r}; did you mean {', '.join(close)}?")
    return EXIT_OK if defs else EXIT_NEGATIVE


def _line_of(repo: Repository, path: str, line: int, cache: dict[str, list[str]]) -> str:
    if path not in cache:
        try:
            cache[path] = repo.text(path).split("\n")
        except SearchError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1].rstrip("\r").strip() if 0 < line <= len(lines) else ""


async def cmd_references(args: argparse.Namespace, ctx: Ctx) -> int:
    _positive(args.limit, "--limit")

    def work(r: Repository) -> tuple[list[Any], int, list[str]]:
        refs = r.references(args.name, args.limit)
        cache: dict[str, list[str]] = {}
        return refs, r.version, [_line_of(r, x.path, x.line, cache) for x in refs]

    (refs, version, texts), _ = await on_repo(ctx, args.path, work)
    if args.json:
        dump(schemas.references_result(refs, version))
    else:
        for ref, text in zip(refs, texts, strict=True):
            print(f"{ref.path}:{ref.line}: {text}")
    return EXIT_OK if refs else EXIT_NEGATIVE


async def cmd_callers(args: argparse.Namespace, ctx: Ctx) -> int:
    _positive(args.limit, "--limit")
    out, _ = await on_repo(ctx, args.path, lambda r: (r.callers(args.name, args.limit), r.version))
    pairs, version = out
    if args.json:
        dump(schemas.callers_result(pairs, version))
    else:
        for ref, d in pairs:
            where = f"{d.kind} {d.qualname}" if d else "top level"
            print(f"{ref.path}:{ref.line}: in {where}")
    return EXIT_OK if pairs else EXIT_NEGATIVE


async def cmd_outline(args: argparse.Namespace, ctx: Ctx) -> int:
    file = relative_file(args.path, args.file)
    out, _ = await on_repo(ctx, args.path, lambda r: (r.outline(file), r.version))
    defs, version = out
    if args.json:
        dump(schemas.symbols_result(defs, version))
    else:
        for d in defs:
            indent = "  " * d.qualname.count(".")
            print(f"{d.start_line:>5}-{d.end_line:<5} {indent}{d.kind} {d.name}")
    return EXIT_OK


async def cmd_read(args: argparse.Namespace, ctx: Ctx) -> int:
    _positive(args.start, "--start")
    if args.end is not None and args.end < args.start:
        raise UsageError(f"--end ({args.end}) is before --start ({args.start})")
    file = relative_file(args.path, args.file)
    out, _ = await on_repo(
        ctx, args.path, lambda r: (r.read(file, args.start, args.end), r.version)
    )
    text, version = out
    if args.json:
        dump(schemas.text_result(text, version))
    elif text:
        print(text)
    return EXIT_OK


async def cmd_map(args: argparse.Namespace, ctx: Ctx) -> int:
    if not 64 <= args.tokens <= 32_000:
        raise UsageError("--tokens must be between 64 and 32000")
    focus = args.focus or None
    out, _ = await on_repo(ctx, args.path, lambda r: (r.repo_map(args.tokens, focus), r.version))
    text, version = out
    if args.json:
        dump(schemas.text_result(text, version))
    elif text:
        print(text)
    return EXIT_OK
