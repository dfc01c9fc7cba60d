"""A trajectory as one self-contained HTML page, rendered entirely on the server.

Everything in a trajectory came from the repository or a model and is untrusted:
every string goes through :func:`html.escape`, nothing is embedded as data, and
the page's Content-Security-Policy allows no network at all and runs only the
one inline script below (by its hash), which opens or closes the ``<details>``
(all of them when the URL ends in ``#expand``). A page whose trajectory has no
``end`` event yet says "running" and reloads itself every two seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from html import escape
from typing import Any

from rlm_mcp.viewer.tree import Query, SubCall, Trace, Turn, build_tree

__all__ = ["CSP", "render_html"]

_PREVIEW = 160

_SCRIPT = """
function setAll(open) {
  document.querySelectorAll("details").forEach(function (d) { d.open = open; });
}
document.getElementById("expand-all").addEventListener("click", function () { setAll(true); });
document.getElementById("collapse-all").addEventListener("click", function () { setAll(false); });
if (location.hash === "#expand") { setAll(true); }
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; img-src 'none'; form-action 'none'; "
    "base-uri 'none'"
)

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.3em; margin: 0 0 .4em; }
.q { border-left: 3px solid #3b6fd8; padding: .2em 0 .2em .8em; margin: .6em 0; }
.q .q { border-color: #9a5bd8; }
.q .q .q { border-color: #d8843b; }
.turn { margin: .5em 0 .5em .6em; }
details { margin: .25em 0; }
summary { cursor: pointer; }
pre { background: #f5f5f7; padding: .5em; overflow-x: auto; white-space: pre-wrap;
      word-break: break-word; margin: .2em 0 .4em 1em; }
.meta { color: #555; font-size: .9em; }
.badge { display: inline-block; padding: 0 .45em; border-radius: .6em; font-size: .85em;
         background: #e7ecf7; }
.status-completed { background: #d9f2dd; }
.status-running { background: #fff2c6; }
.bad { background: #f8d7d5; }
table { border-collapse: collapse; margin: .4em 0; }
td, th { border: 1px solid #ddd; padding: .15em .6em; text-align: left; vertical-align: top; }
.note { color: #8a5a00; }
button { margin-right: .4em; }
"""


def _e(value: Any) -> str:
    """A value as escaped text (``None`` is empty)."""
    return "" if value is None else escape(str(value), quote=True)


def _preview(text: Any) -> str:
    s = " ".join(str(text or "").split())
    return _e(s if len(s) <= _PREVIEW else s[:_PREVIEW] + "…")


def _pre(label: str, text: Any, *, open_: bool = False) -> str:
    body = str(text or "")
    if not body.strip():
        return ""
    flag = " open" if open_ else ""
    return f"<details{flag}><summary>{_e(label)}</summary><pre>{_e(body)}</pre></details>"


def _stats(
    tokens: int, seconds: float, calls: int | None = None, cost: Decimal | None = None
) -> str:
    parts = [f"{tokens:,} tokens", f"{seconds:.2f}s"]
    if cost is not None:
        parts.insert(1, f"${cost:.4f}")
    if calls is not None:
        parts.insert(0, f"{calls} LLM call{'s' if calls != 1 else ''}")
    return f'<span class="meta">{_e(" · ".join(parts))}</span>'


def _sub_call(sub: SubCall) -> str:
    ev = sub.event
    cached = " (cached)" if ev.get("cached") else ""
    head = (
        f'<span class="badge">llm_query{_e(cached)}</span> [{_e(ev.get("model"))}] '
        f"{_preview(ev.get('prompt'))} {_stats(sub.tokens, 0.0, cost=sub.cost).replace(' · 0.00s', '')}"
    )
    return (
        f'<details class="sub"><summary>{head}</summary>'
        f"{_pre('prompt', ev.get('prompt'), open_=True)}"
        f"{_pre('answer', ev.get('answer'), open_=True)}</details>"
    )


def _exec(ev: dict[str, Any], index: int) -> str:
    duration = ev.get("duration")
    took = f" ({duration:.2f}s)" if isinstance(duration, int | float) else ""
    failed = " bad" if ev.get("error") else ""
    out = (
        "".join(_pre(name, ev.get(name)) for name in ("stdout", "stderr", "error", "value"))
        or '<p class="meta">(no output)</p>'
    )
    return (
        f'<details class="exec"><summary><span class="badge{failed}">code {index}</span>'
        f"{_e(took)} {_preview(ev.get('code'))}</summary>"
        f"<pre>{_e(ev.get('code'))}</pre>"
        f'<div class="out">{out}</div></details>'
    )


def _note(ev: dict[str, Any]) -> str:
    extra = {k: v for k, v in ev.items() if k not in ("event", "t", "depth", "message")}
    text = ev.get("message") or ev.get("event")
    detail = f"<pre>{_e(json.dumps(extra, ensure_ascii=False, indent=1))}</pre>" if extra else ""
    label = f"{ev.get('event')}: {text}" if ev.get("event") != "note" else text
    return f'<details class="note"><summary>! {_e(label)}</summary>{detail}</details>'


def _turn(turn: Turn) -> str:
    ev = turn.reply
    final = " (final request)" if ev.get("final") else ""
    head = (
        f"<b>turn {_e(ev.get('iteration'))}{_e(final)}</b> "
        f"{_stats(turn.tokens, turn.seconds, turn.llm_calls, turn.cost)}"
    )
    parts = [_pre("model reply", ev.get("reply"))]
    parts += [_exec(x, i) for i, x in enumerate(turn.execs, 1)]
    parts += [_sub_call(s) for s in turn.sub_calls]
    parts += [_query(c) for c in turn.children]
    parts += [_note(n) for n in turn.notes]
    return f'<details class="turn"><summary>{head}</summary>{"".join(parts)}</details>'


def _query(query: Query) -> str:
    kind = "query" if query.depth == 0 else "rlm_query"
    head = (
        f'<span class="badge">{kind} · depth {query.depth}</span> '
        f"{_preview(query.start.get('question'))} "
        f"{_stats(query.tokens, query.seconds, query.llm_calls, query.cost)}"
    )
    parts = [_pre("question", query.start.get("question"), open_=True)]
    parts += [_note(n) for n in query.notes]
    parts += [_sub_call(s) for s in query.sub_calls]
    parts += [_turn(t) for t in query.turns]
    return f'<div class="q"><div>{head}</div>{"".join(parts)}</div>'


def _usage_rows(usage: dict[str, Any]) -> str:
    rows = []
    models = usage.get("by_model")
    for name, m in models.items() if isinstance(models, dict) else []:
        if not isinstance(m, dict):
            continue
        priced = "" if m.get("priced", True) else " (no price: not counted)"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(m.get('calls'))}</td>"
            f"<td>{_e(m.get('input_tokens'))}</td><td>{_e(m.get('output_tokens'))}</td>"
            f"<td>${_e(m.get('cost_usd'))}{_e(priced)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table><tr><th>model</th><th>calls</th><th>input tokens</th><th>output tokens</th>"
        f"<th>cost</th></tr>{''.join(rows)}</table>"
    )


def _citations(end: dict[str, Any]) -> str:
    cites = end.get("citations")
    if not isinstance(cites, list) or not cites:
        return '<p class="meta">no citations</p>'
    rows = []
    for c in cites:
        if not isinstance(c, dict):
            continue
        ok = c.get("verified") is True
        mark = (
            '<span class="badge status-completed">verified</span>'
            if ok
            else ('<span class="badge bad">not verified</span>')
        )
        nearest = c.get("nearest")
        near = ", ".join(str(n) for n in nearest) if isinstance(nearest, list) else ""
        rows.append(f"<tr><td>{_e(c.get('text'))}</td><td>{mark}</td><td>{_e(near)}</td></tr>")
    return (
        "<table><tr><th>citation</th><th>checked against the index</th><th>nearest</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _summary(query: Query) -> str:
    end = query.end
    if end is None:
        return (
            '<p><span class="badge status-running" id="status">running</span> '
            f"{_stats(query.tokens, query.seconds, query.llm_calls, query.cost)} so far; this page reloads "
            "every 2 seconds until the query ends.</p>"
        )
    usage = end.get("usage") if isinstance(end.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    status = str(end.get("status") or "?")
    cls = "status-completed" if status == "completed" else "bad"
    limit = f" · guardrail: {end.get('limit')}" if end.get("limit") else ""
    totals = (
        f"{_num_text(usage.get('calls'))} LLM calls · "
        f"{_num_text(_num(usage.get('input_tokens')) + _num(usage.get('output_tokens')))} tokens"
        f" · ${_e(usage.get('cost_usd', '?'))} · {_e(end.get('wall_seconds', '?'))}s · "
        f"{_e(end.get('iterations', '?'))} turns · depth {_e(end.get('max_depth_reached', 0))}"
    )
    unpriced = usage.get("unpriced_models")
    unpriced_note = (
        f'<p class="meta">models without a price (not in the cost): {_e(", ".join(map(str, unpriced)))}</p>'
        if isinstance(unpriced, list) and unpriced
        else ""
    )
    error = f'<p class="bad">{_e(end.get("error"))}</p>' if end.get("error") else ""
    evidence = end.get("evidence")
    ev_html = (
        _pre(f"evidence ({len(evidence)} ranges read)", "\n".join(map(str, evidence)))
        if isinstance(evidence, list)
        else ""
    )
    return (
        f'<p><span class="badge {cls}" id="status">{_e(status)}{_e(limit)}</span> '
        f'<span id="totals">{totals}</span></p>{error}{unpriced_note}'
        f"{_usage_rows(usage)}{_pre('answer', end.get('answer'), open_=True)}"
        f"<h2>Citations</h2>{_citations(end)}{ev_html}"
    )


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _num_text(value: Any) -> str:
    return f"{int(_num(value)):,}"


def _page(trace: Trace, title: str) -> str:
    refresh = '<meta http-equiv="refresh" content="2">' if trace.running else ""
    body = []
    for i, query in enumerate(trace.queries, 1):
        heading = f"Query {i}" if len(trace.queries) > 1 else "Query"
        body.append(f"<section><h2>{heading}</h2>{_summary(query)}<h2>Recursion tree</h2>")
        body.append(f'<div class="tree">{_query(query)}</div></section>')
    if not trace.queries:
        body.append(
            '<p><span class="badge status-running" id="status">running</span> '
            "no events yet; this page reloads every 2 seconds.</p>"
        )
    if trace.stray:
        body.append("<h2>Events outside the tree</h2>" + "".join(_note(e) for e in trace.stray))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        f"{refresh}<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Trajectory {_e(title)}</h1>"
        '<p><button id="expand-all" type="button">expand all</button>'
        '<button id="collapse-all" type="button">collapse all</button></p>'
        f"{''.join(body)}<script>{_SCRIPT}</script></body></html>\n"
    )


def render_html(events: Iterable[dict[str, Any]], *, title: str = "") -> str:
    """The whole page for a trajectory's events; ``title`` is shown escaped (a file name)."""
    return _page(build_tree(events), title)
