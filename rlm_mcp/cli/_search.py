"""``rlm-mcp search``: regex or fixed-string search, paged, with context lines like ripgrep.

The index's grep returns up to :data:`~rlm_mcp.index.search.searcher.MAX_GREP_RESULTS`
hits; this command asks for all of them once, so it can report the total,
page with ``--offset`` and still exit 1 only when nothing matched. Files the
index skipped (too large, generated, minified, binary) are never searched;
when nothing matches, or with ``-v``, the command says how many were skipped
and how to include them, so "no matches" never hides a file the user expected.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_mcp.cli._common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    Ctx,
    UsageError,
    dump,
    on_repo,
    say,
)

if TYPE_CHECKING:
    from rlm_mcp.index import Repository
    from rlm_mcp.index.search.grep import GrepHit
    from rlm_mcp.service import LoadSummary

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


def skipped_note(summary: LoadSummary, glob: str | None, max_bytes: int) -> list[str]:
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


def _context(repo: Repository, hits: list[GrepHit], n: int) -> list[tuple[list[str], list[str]]]:
    """For each hit, up to ``n`` lines before and after it, as the indexed text has them."""
    texts: dict[str, list[str]] = {}
    out: list[tuple[list[str], list[str]]] = []
    for h in hits:
        if h.path not in texts:
            text = repo.text(h.path)
            texts[h.path] = [ln.rstrip("\r") for ln in text.removesuffix("\n").split("\n")]
        lines = texts[h.path]
        i = h.line - 1
        out.append((lines[max(0, i - n) : i], lines[i + 1 : i + 1 + n]))
    return out


def _print_with_context(hits: list[GrepHit], around: list[tuple[list[str], list[str]]]) -> None:
    """ripgrep's layout: ``path:line:text`` for hits, ``path-line-text`` for the lines around
    them, ``--`` between groups that do not touch; a hit inside another's context stays a hit."""
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
            if no in matched:
                print(f"{path}:{no}:{matched[no]}")
            else:
                print(f"{path}-{no}-{lines[no]}")
            prev, started = no, True


def _hit_json(hit: GrepHit, context: tuple[list[str], list[str]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": hit.path, "line": hit.line, "text": hit.text}
    if context is not None:
        out["before"], out["after"] = context
    return out


async def cmd_search(args: argparse.Namespace, ctx: Ctx) -> int:
    from rlm_mcp.index.search.grep import MAX_GREP_RESULTS

    if args.max_results < 1:
        raise UsageError("--max-results must be at least 1")
    if args.offset < 0:
        raise UsageError("--offset must be 0 or more")
    if args.context < 0:
        raise UsageError("--context must be 0 or more")
    pattern = re.escape(args.pattern) if args.fixed_strings else args.pattern

    def work(repo: Repository) -> tuple[list[GrepHit], int, list[Any]]:
        hits = repo.grep(pattern, args.glob, MAX_GREP_RESULTS, args.ignore_case)
        page = hits[args.offset : args.offset + args.max_results]
        around = _context(repo, page, args.context) if args.context else []
        return hits, repo.version, [page, around]

    (hits, version, (page, around)), summary = await on_repo(ctx, args.path, work)
    total, capped = len(hits), len(hits) >= MAX_GREP_RESULTS
    more = capped or args.offset + len(page) < total
    if args.json:
        dump(
            {
                "hits": [_hit_json(h, around[i] if around else None) for i, h in enumerate(page)],
                "truncated": more,
                "total": total,
                "total_is_lower_bound": capped,
                "offset": args.offset,
                "index_version": version,
            }
        )
    elif around:
        _print_with_context(page, around)
    else:
        for hit in page:
            print(hit)
    if more and page:
        say(_page_note(args.offset, len(page), total, capped))
    elif total and not page:
        say(f"rlm-mcp: no hits at --offset {args.offset}: there are {total:,}")
    if not total or args.verbose:
        if not total:
            say(f"rlm-mcp: no matches in {summary.files:,} indexed files of {summary.root}")
        max_bytes = ctx.config.settings.index.max_file_bytes
        for line in skipped_note(summary, args.glob, max_bytes):
            say(line)
    return EXIT_OK if total else EXIT_NEGATIVE
