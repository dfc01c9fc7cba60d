"""What a tool's text content says: each result rendered for a model to read, within a budget.

A tool's ``structuredContent`` is its :mod:`rlm_mcp.schemas` dict; its text content
is :func:`render` of the same dict, the same facts as lines a model reads without
parsing JSON (``path:line:text`` for a search, ``path:start-end kind name — signature``
for a definition, the answer first for a query). A shape without a renderer falls back
to compact JSON.

Every response stays under ``max_result_tokens`` (:func:`response_tokens` counts the
rendering, and the JSON of ``structuredContent`` as sent by the ``structured_output``
mode). A list-shaped tool cuts its list to fit (:func:`fit_page`) and hands back a
``next_cursor``: an opaque string (base64 of ``{"o": offset, "q": key}``) where ``key``
hashes the query's arguments, so a cursor given to another query is refused
(:func:`read_cursor`). A long text (``rlm_read``, ``rlm_repo_map``) is cut at a line
(:func:`fit_text`) with a note saying how to get the rest.

:func:`respond` builds what is sent: the rendering first; with ``structured_output``
``auto`` also ``structuredContent``, with ``on`` the JSON as a second text block too, with
``off`` the rendering alone (the server then publishes no output schemas, since a tool with
one must send ``structuredContent``). The SDK lists tools once for every client, so the
mode is per server, not per client.

Imports nothing of the index or the server; of the SDK only its wire types.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from mcp_types import CallToolResult, ContentBlock, TextContent

from rlm_mcp.backends.base import estimate_tokens
from rlm_mcp.config import OutputSettings

__all__ = [
    "ERROR_META",
    "PAGED",
    "cursor_key",
    "fit",
    "fit_page",
    "fit_text",
    "make_cursor",
    "paging_key",
    "read_cursor",
    "render",
    "respond",
    "response_tokens",
    "to_json",
    "tool_error",
]

Result = Mapping[str, Any]

PAGED = {
    "rlm_find": "hits",
    "rlm_search": "hits",
    "rlm_symbols": "symbols",
    "rlm_outline": "symbols",
    "rlm_references": "references",
    "rlm_callers": "callers",
    "rlm_repos": "repositories",
}
"""The list-shaped tools (each takes ``cursor``) and the key of their list."""

_UNKEYED = frozenset({"ctx", "cursor", "offset", "max_results"})
"""Arguments a cursor does not depend on: the page's position and size."""


# -- cursors ----------------------------------------------------------------------------


def cursor_key(tool: str, args: Mapping[str, Any]) -> str:
    """A short hash of the tool and the arguments that decide its result list."""
    blob = json.dumps([tool, dict(args)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def paging_key(tool: str, args: Mapping[str, Any]) -> str:
    """The :func:`cursor_key` of one call of a list-shaped tool."""
    return cursor_key(tool, {k: v for k, v in args.items() if k not in _UNKEYED})


def make_cursor(offset: int, key: str) -> str:
    raw = json.dumps({"o": offset, "q": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str | None, key: str) -> int:
    """The offset a cursor stands for; ``ValueError`` (a ``bad_request``) when it is not ours.

    ``None`` or ``""`` is the first page.
    """
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, owner = data["o"], data["q"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            "invalid cursor: pass the next_cursor of an earlier result unchanged, "
            "or omit cursor for the first page"
        ) from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError("invalid cursor: its offset is not a position in a result list")
    if owner != key:
        raise ValueError(
            "this cursor belongs to a different query: call again with the same arguments "
            "as the call that returned it, or omit cursor to start over"
        )
    return offset


# -- sizes ------------------------------------------------------------------------------


def to_json(result: Result) -> str:
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)


def response_tokens(tool: str, result: Result, mode: str) -> int:
    """Estimated tokens of the whole response: the rendering, plus the JSON the mode sends."""
    tokens = estimate_tokens(render(tool, result))
    if mode != "off":
        copies = 2 if mode == "on" else 1  # structuredContent, and in "on" a JSON text block
        tokens += copies * estimate_tokens(to_json(result))
    return tokens


def _largest(fits: Callable[[int], bool], high: int) -> int:
    """The largest ``k`` in ``0..high`` with ``fits(k)`` (``fits`` is monotone, ``fits(0)`` assumed)."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def fit_page(
    tool: str,
    result: Result,
    list_key: str,
    *,
    start: int,
    total: int,
    key: str,
    out: OutputSettings,
) -> dict[str, Any]:
    """``result`` with its list (the items from ``start`` on) cut to the response budget.

    ``total`` counts every item of the full list. Sets ``truncated`` (more follow),
    ``next_cursor`` (``None`` at the end) and ``remaining``, unless the page is the whole
    list (the result then stays as it was, equal to the CLI's ``--json``). At least one item is kept, a text item cut to
    fit, so paging always moves on.
    """
    items = list(result[list_key])
    budget, mode = out.max_result_tokens, out.structured_output

    def page(k: int, head: list[Any] | None = None) -> dict[str, Any]:
        more = total - start - k > 0
        return {
            **result,
            list_key: head if head is not None else items[:k],
            "truncated": more,
            "next_cursor": make_cursor(start + k, key) if more else None,
            "remaining": max(0, total - start - k),
        }

    def fits(k: int) -> bool:
        return response_tokens(tool, page(k), mode) <= budget

    if fits(len(items)):
        whole = start == 0 and total <= len(items)
        return dict(result) if whole else page(len(items))
    k = max(1, _largest(fits, len(items) - 1))
    if k == 1 and not fits(1) and isinstance(items[0], str):
        chars = max(200, budget * 4 // (3 if mode == "off" else 6))
        return page(1, [items[0][:chars] + " …(line cut at the response budget)"])
    return page(k)


def fit_text(
    tool: str, result: Result, out: OutputSettings, rest: Callable[[int], str]
) -> dict[str, Any]:
    """``result`` with its ``text`` cut at a line to fit; ``rest(lines_kept)`` says how to go on."""
    budget, mode = out.max_result_tokens, out.structured_output
    if response_tokens(tool, result, mode) <= budget:
        return dict(result)
    lines = str(result["text"]).splitlines(keepends=True)

    def cut(k: int) -> dict[str, Any]:
        note = f"\n… {len(lines) - k} more lines cut at the response budget: {rest(k)}\n"
        return {**result, "text": "".join(lines[:k]) + note}

    k = _largest(lambda k: response_tokens(tool, cut(k), mode) <= budget, len(lines) - 1)
    return cut(k)


def fit(
    tool: str, result: Result, args: Mapping[str, Any], out: OutputSettings, *, start: int, key: str
) -> dict[str, Any]:
    """``tool``'s result cut to the response budget, for the call with ``args``.

    A list-shaped tool's list is the full one, except ``rlm_search``'s (already the page
    from ``start``, its ``total`` counting every hit); ``start`` comes from the cursor.
    """
    list_key = PAGED.get(tool)
    if list_key is not None:
        items = list(result[list_key])
        if tool == "rlm_search":
            total = max(int(result["total"]), start + len(items))
        else:
            total, result = len(items), {**result, list_key: items[start:]}
        return fit_page(tool, result, list_key, start=start, total=total, key=key, out=out)
    if tool == "rlm_read":
        first = int(args.get("start") or 1)
        return fit_text(tool, result, out, lambda k: f"call rlm_read with start={first + k}")
    if tool == "rlm_repo_map":
        return fit_text(tool, result, out, lambda _: "call again with a smaller max_tokens")
    return dict(result)


# -- renderings ---------------------------------------------------------------------------


def _footer(result: Result, noun: str, more: int | None) -> list[str]:
    lines = []
    if result.get("partial"):
        lines.append(f"(partial: {result['partial']})")
    cursor = result.get("next_cursor")
    if cursor:
        count = f"{more} more {noun}" if more is not None and more > 0 else f"More {noun}"
        lines.append(f"{count}: call again with the same arguments and cursor={cursor!r}")
    return lines


def _grep(r: Result) -> str:
    hits = list(r["hits"])
    bound = "+" if r.get("total_is_lower_bound") else ""
    offset = int(r.get("offset", 0))
    where = f", from {offset + 1}" if offset else ""
    head = f"{len(hits)} of {r['total']}{bound} matching lines{where}"
    sep = "\n--\n" if any("\n" in h for h in hits) else "\n"
    more = r.get("remaining", int(r["total"]) - offset - len(hits))
    return "\n".join([head, *([sep.join(hits)] if hits else []), *_footer(r, "hits", more)])


def _span(d: Result) -> str:
    return f"{d['path']}:{d['line']}-{d['end_line']}"


def _symbols(r: Result) -> str:
    rows = []
    for s in r["symbols"]:
        row = f"{_span(s)} {s['kind']} {s['qualname']}"
        if s.get("signature"):
            row += f" — {s['signature']}"
        if s.get("doc"):
            row += f"  # {s['doc']}"
        rows.append(row)
    head = f"{len(rows)} definitions" if rows else "no definitions found"
    if not rows and r.get("did_you_mean"):
        head += "; did you mean " + ", ".join(r["did_you_mean"]) + "?"
    return "\n".join([head, *rows, *_footer(r, "definitions", r.get("remaining"))])


def _find(r: Result) -> str:
    rows = [
        f"{_span(h)} {h['kind']} {h['qualname'] or ('(line)' if h['kind'] == 'line' else '(file)')}"
        f" — {h['snippet']} ({h['score']:.2f}; {'+'.join(h.get('signals') or ()) or 'bm25'})"
        for h in r["hits"]
    ]
    head = f"{len(rows)} ranked hits" if rows else "no hits"
    return "\n".join([head, *rows, *_footer(r, "hits", r.get("remaining"))])


def _references(r: Result) -> str:
    refs = list(r["references"])
    head = f"{len(refs)} references" if refs else "no references found"
    return "\n".join([head, *refs, *_footer(r, "references", r.get("remaining"))])


def _callers(r: Result) -> str:
    rows = [
        f"{c['path']}:{c['line']} "
        + (f"{c['caller_kind']} {c['caller']}" if c.get("caller") else "(top level)")
        for c in r["callers"]
    ]
    head = f"{len(rows)} uses" if rows else "no uses found"
    return "\n".join([head, *rows, *_footer(r, "uses", r.get("remaining"))])


def _text(r: Result) -> str:
    return "\n".join([str(r["text"]).rstrip("\n"), *_footer(r, "", None)])


def _load(r: Result) -> str:
    if r.get("status") == "loading":
        return (
            f"{r.get('indexing')}. The load goes on in the background: poll rlm_repos, or call "
            f"rlm_load again to wait for it; rlm_search answers from the files on disk "
            f"meanwhile. Pass repo={r['name']!r} to other tools."
        )
    langs = ", ".join(f"{k} {v}" for k, v in sorted(r["languages"].items(), key=lambda kv: -kv[1]))
    skipped = ", ".join(f"{k} {v}" for k, v in r["skipped"].items())
    lines = [
        f"{'reloaded' if r['reloaded'] else 'loaded'} {r['name']} ({r['root']}): "
        f"{r['files']} files, {r['lines']} lines, ~{r['tokens']} tokens, {r['symbols']} symbols; "
        f"index version {r['index_version']}; pass repo={r['name']!r} to other tools",
        f"parsed {r['parsed']}, reused {r['reused']}, removed {r['removed']} in {r['seconds']:.2f} s; "
        f"git {'yes' if r['git'] else 'no'}; watching {'yes' if r['watching'] else 'no'}",
    ]
    if langs:
        lines.append(f"languages: {langs}")
    if skipped:
        lines.append(f"skipped: {skipped}")
        lines += [f"  {f['path']}: {f['reason']}" for f in list(r["skipped_files"])[:20]]
    if r.get("invalid_utf8"):
        lines.append(f"decoded with replacement characters: {', '.join(r['invalid_utf8'][:20])}")
    if r.get("indexing"):
        lines.append(f"indexing: {r['indexing']}")
    return "\n".join(lines + _footer(r, "", None))


UNVERIFIED_MARK = " (?)"
UNVERIFIED_NOTE = "(?) not found in the index: the model may have invented "


def answer_block(r: Result) -> list[str]:
    """The answer as a reader should see it: each citation the index lacks marked ``(?)``
    with a note, the verified places it rests on, and the judged places it does not cite
    listed apart ("also relevant (ranked)"), never mixed into its claims."""
    answer = str(r.get("answer") or "")
    citations = list(r.get("citations") or ())
    unverified = [c["text"] for c in citations if not c["verified"]]
    for text in sorted(set(unverified), key=len, reverse=True):
        answer = re.sub(
            rf"(?<![\w/.]){re.escape(text)}(?![\w/]|\s*\(\?\))", text + UNVERIFIED_MARK, answer
        )
    lines = [answer] if answer else []
    if unverified:
        lines.append(
            UNVERIFIED_NOTE
            + ("it" if len(unverified) == 1 else "them")
            + ": "
            + ", ".join(unverified)
        )
    verified = [c["text"] for c in citations if c["verified"]]
    if verified:
        lines.append("rests on (verified in the index): " + ", ".join(verified))
    also = list(r.get("also_relevant") or ())
    if also and answer:
        lines.append("also relevant (ranked, not part of the answer):")
        lines += [f"  {_location(h)}" for h in also]
    return lines


def _location(h: Mapping[str, Any]) -> str:
    name = f" {h.get('kind', '')} {h['qualname']}" if h.get("qualname") else ""
    reason = f" — {h['reason']}" if h.get("reason") else ""
    return f"{_span(h)}{name}{reason}"


def _query(r: Result) -> str:
    usage = r["usage"]
    status = r["status"] + (f" ({r['limit']})" if r.get("limit") else "")
    lines = [
        *answer_block(r),
        "",
        f"status: {status}; {r['iterations']} turns, {r['sub_calls']} sub-calls, "
        f"{r['wall_seconds']:.1f} s",
        f"usage: {usage['calls']} LLM calls, {usage['input_tokens']} in / "
        f"{usage['output_tokens']} out tokens, ${usage['cost_usd']}",
    ]
    if r.get("evidence"):
        lines.append("evidence: " + ", ".join(r["evidence"]))
    if not r["answer"] and r.get("candidates"):
        lines.append("candidates:")
        lines += [f"  {_span(h)} {h['qualname'] or '(file)'}" for h in r["candidates"]]
    if r.get("trajectory"):
        lines.append(f"trajectory: {r['trajectory']}")
    if r.get("session"):
        lines.append(f"session: {r['session']} (pass it back as session for a follow-up)")
    return "\n".join(lines + _footer(r, "", None))


def _exec(r: Result) -> str:
    parts = []
    if r["stdout"]:
        parts.append(f"stdout:\n{r['stdout'].rstrip()}")
    if r["stderr"]:
        parts.append(f"stderr:\n{r['stderr'].rstrip()}")
    if r.get("value") is not None:
        parts.append(f"value: {r['value']}")
    if r.get("error"):
        parts.append(f"error: {r['error']}")
    flags = [n for n in ("truncated", "timed_out", "restarted") if r.get(n)]
    parts.append(f"({r['duration']:.2f} s{''.join('; ' + f for f in flags)})")
    if r.get("session"):
        parts.append(f"session: {r['session']} (pass it back as session to keep the variables)")
    return "\n".join(parts) if parts else "(no output)"


def _repos(r: Result) -> str:
    rows = []
    for repo in r["repositories"]:
        if repo.get("status") in ("loading", "failed"):
            rows.append(f"{repo['name']} ({repo['root']}): {repo.get('indexing')}")
            continue
        row = (
            f"{repo['name']} ({repo['root']}): {repo['files']} files, {repo['symbols']} symbols, "
            f"index version {repo['index_version']}"
        )
        if repo.get("watching"):
            row += f", watching ({repo.get('watch_mode')})"
            row += ", fresh" if repo.get("fresh") else ", not yet fresh"
        if repo.get("pending_changes"):
            row += f", {repo['pending_changes']} changes pending"
        if repo.get("last_error"):
            row += f", last error: {repo['last_error']}"
        if repo.get("indexing"):
            row += f", indexing: {repo['indexing']}"
        rows.append(row)
    head = f"{len(rows)} repositories loaded" if rows else "no repositories loaded (use rlm_load)"
    state = (
        f"llm configured: {'yes' if r['llm_configured'] else 'no'}; sandbox: {r['sandbox']}; "
        f"sessions: {r.get('sessions', 0)}"
    )
    return "\n".join([head, *rows, state, *_footer(r, "repositories", r.get("remaining"))])


def _unload(r: Result) -> str:
    done = "unloaded" if r["unloaded"] else "was not loaded:"
    return f"{done} {r['name']} ({r['root']})"


_RENDERERS: dict[str, Callable[[Result], str]] = {
    "rlm_load": _load,
    "rlm_query": _query,
    "rlm_find": _find,
    "rlm_search": _grep,
    "rlm_symbols": _symbols,
    "rlm_references": _references,
    "rlm_callers": _callers,
    "rlm_outline": _symbols,
    "rlm_read": _text,
    "rlm_repo_map": _text,
    "rlm_exec": _exec,
    "rlm_repos": _repos,
    "rlm_unload": _unload,
}


def render(tool: str, result: Result) -> str:
    """The text content of ``tool``'s result; compact JSON when it has no renderer or fails."""
    renderer = _RENDERERS.get(tool)
    if renderer is None:
        return to_json(result)
    try:
        return renderer(result)
    except (KeyError, TypeError, ValueError, AttributeError):
        return to_json(cast(dict[str, Any], result))


def respond(tool: str, result: Result, out: OutputSettings) -> CallToolResult:
    """A tool's result as sent: its rendering, then (by ``structured_output``) the JSON."""
    content: list[ContentBlock] = [TextContent(type="text", text=render(tool, result))]
    if out.structured_output == "off":
        return CallToolResult(content=content)
    if out.structured_output == "on":
        content.append(TextContent(type="text", text=to_json(result)))
    return CallToolResult(content=content, structured_content=dict(result))


ERROR_META = "rlm-mcp/error"
"""The ``_meta`` key of a failed tool result: ``{"error", "error_kind", "limit"?, "session"?...}``."""


def tool_error(message: str, kind: str, **fields: Any) -> CallToolResult:
    """A tool execution error the client's model reads and its code can branch on.

    The text says what failed and names the kind; the result's ``_meta`` under
    :data:`ERROR_META` carries ``error`` (the message), ``error_kind`` and any
    ``fields`` (``limit``, ``session``...). Not ``structuredContent``: clients
    such as the TypeScript SDK check it against the tool's output schema even
    on an error, and that schema describes successes.
    """
    text = f"{message}\n\n(error_kind: {kind})"
    payload = {"error": message, "error_kind": kind}
    payload.update({k: v for k, v in fields.items() if v is not None})
    return CallToolResult(
        content=[TextContent(type="text", text=text)], is_error=True, _meta={ERROR_META: payload}
    )
