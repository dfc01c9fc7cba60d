"""The viewer's page: the tree, the totals, the guardrail, the citations; and no injected tag."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from rlm_mcp.viewer import build_tree, render_html
from tests.cli.cli_helpers import isolated_env, run_cli
from tests.viewer.events import EVIL, sample_events, write_jsonl


class _Tags(HTMLParser):
    """Every start tag, and the text inside each <script>, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def test_the_tree_folds_turns_sub_calls_and_a_nested_level_with_tokens_and_time() -> None:
    trace = build_tree(sample_events())
    assert not trace.running and trace.stray == []
    (query,) = trace.queries
    assert [t.reply["iteration"] for t in query.turns] == [1, 2]
    first, second = query.turns
    assert len(first.sub_calls) == 1 and len(first.execs) == 1 and first.children == []
    assert first.tokens == 1030 + 85 and first.llm_calls == 2
    assert round(first.seconds, 2) == 0.9  # from the start to the turn's last event
    (nested,) = second.children
    assert nested.depth == 1 and nested.start["question"].startswith("inner question")
    assert len(nested.turns) == 1 and nested.turns[0].execs[0]["code"] == 'FINAL("inner done")'
    assert second.tokens == 1120 + 910
    assert round(second.seconds, 2) == 1.3
    assert query.tokens == 3145 and query.llm_calls == 4 and query.seconds == 3.0


def test_the_page_shows_totals_the_guardrail_citations_and_folds_code_and_output() -> None:
    page = render_html(sample_events(), title="t.jsonl")
    assert page.startswith("<!DOCTYPE html>")
    assert "limit_reached · guardrail: max_iterations" in page
    assert "4 LLM calls · 3,145 tokens · $0.0123 · 3.0s · 2 turns · depth 1" in page
    assert "<td>sub-model</td><td>1</td><td>80</td><td>5</td><td>$0.0003</td>" in page
    assert '<td>calc/ops.py:1</td><td><span class="badge status-completed">verified' in page
    assert "not verified" in page
    assert "rlm_query · depth 1" in page and "query · depth 0" in page
    assert "llm_query</span> [sub-model]" in page
    assert "2 LLM calls · 1,115 tokens · 0.90s" in page  # turn 1
    assert '<details class="exec"><summary>' in page and "<summary>stdout</summary>" in page
    assert 'http-equiv="refresh"' not in page and ">running<" not in page


def test_a_trajectory_without_an_end_says_running_and_reloads() -> None:
    page = render_html(sample_events(ended=False))
    assert '<meta http-equiv="refresh" content="2">' in page
    assert 'id="status">running</span>' in page
    assert build_tree(sample_events(ended=False)).running
    assert '<meta http-equiv="refresh"' in render_html([])


def test_model_and_repository_text_never_becomes_markup() -> None:
    page = render_html(sample_events(evil=EVIL), title=f"x{EVIL}.jsonl")
    parsed = _parse(page)
    names = [tag for tag, _ in parsed.tags]
    assert names.count("script") == 1, "only the page's own script"
    assert "alert" not in parsed.scripts[0]
    assert "<script>alert" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10
    # No attribute carries an event handler, and nothing loads from anywhere.
    for _, attrs in parsed.tags:
        assert not any(k.startswith("on") for k in attrs)
        assert "src" not in attrs
    csp = next(
        a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert (
        csp is not None
        and "default-src 'none'" in csp
        and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    )
    assert not re.search(r"https?://", page), "self-contained: no network reference"


def test_trace_html_writes_the_page_and_escapes_the_file_name(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / f"{EVIL.replace('/', '_')}.jsonl", sample_events(evil=EVIL))
    out = tmp_path / "out.html"
    env = isolated_env(tmp_path)
    proc = run_cli("trace", str(source), "--html", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    page = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;_script&gt;.jsonl" in page
    assert [t for t, _ in _parse(page).tags].count("script") == 1
    to_stdout = run_cli("trace", str(source), "--html", "-", env=env)
    assert to_stdout.stdout == page
    bad = run_cli("trace", str(source), "--html", str(tmp_path / "no" / "dir.html"), env=env)
    assert bad.returncode == 2 and "cannot write" in bad.stderr


def test_each_node_shows_its_cost_when_its_calls_were_priced() -> None:
    from decimal import Decimal

    events = sample_events()
    for ev in events:
        if ev["event"] == "root_reply" and ev.get("depth") == 0:
            ev["cost_usd"] = "0.0020"
        elif ev["event"] == "sub_call":
            ev["cost_usd"] = "0.0001"
    trace = build_tree(events)
    (query,) = trace.queries
    first, _second = query.turns
    assert first.cost == Decimal("0.0021")  # its reply and its llm_query
    assert query.cost is not None and query.cost >= Decimal("0.0041")
    page = render_html(events, title="t")
    assert "$0.0021" in page
    # an unpriced trajectory shows no per-node cost at all (not $0)
    assert build_tree(sample_events()).queries[0].cost is None
    assert "$0.0000" not in render_html(sample_events(), title="t")
    bad = sample_events()
    bad[2]["cost_usd"] = "NaN"
    assert build_tree(bad).queries[0].turns[0].cost is None
