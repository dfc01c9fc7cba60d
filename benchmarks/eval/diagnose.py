"""Why RLM answers went wrong: failure patterns counted over the trajectories.

``python -m benchmarks.eval diagnose [--out DIR] [--show N]`` reads the RLM
records of ``results.jsonl``, opens each trajectory and tags what happened,
then prints the counts (and the first N wrong trajectories, formatted).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlm_mcp.engine.parsing import extract_code_blocks
from rlm_mcp.engine.trajectory import format_trajectory, read_trajectory

__all__ = ["TAGS", "diagnose", "tag_trajectory"]

TAGS = {
    "no_code_reply": "a root reply had no ```python block (nothing ran)",
    "bare_final": "a reply had FINAL(...) outside a code fence (ignored)",
    "invented_turn": "a reply wrote '[turn N of M]' or 'REPL output' itself (hallucinated turns)",
    "final_first_turn": "FINAL was called in turn 1, before seeing any output",
    "final_none": "the final answer was empty or 'None'",
    "exec_error": "model code raised (bad API use, wrong keys...)",
    "used_context": "code read the whole `context` string instead of the search functions",
    "used_grep": "code called repo.grep",
    "used_symbols_or_definition": "code called repo.symbols / repo.definition",
    "used_references": "code called repo.references",
    "sub_calls": "code called llm_query / llm_query_batched / rlm_query",
    "loop_note": "the engine intervened against a loop",
    "limit_reached": "a guardrail stopped the query",
}

_BARE_FINAL = re.compile(r"^\s*FINAL(?:_VAR)?\(", re.MULTILINE)


def tag_trajectory(path: Path) -> set[str]:
    tags: set[str] = set()
    events = list(read_trajectory(path))
    for ev in events:
        kind = ev.get("event")
        if kind == "root_reply":
            reply = str(ev.get("reply") or "")
            blocks = extract_code_blocks(reply)
            if not blocks:
                tags.add("no_code_reply")
                if _BARE_FINAL.search(reply):
                    tags.add("bare_final")
            if "[turn " in reply or "REPL output" in reply:
                tags.add("invented_turn")
        elif kind == "exec":
            code = str(ev.get("code") or "")
            if ev.get("error"):
                tags.add("exec_error")
            if re.search(r"\bcontext\b", code):
                tags.add("used_context")
            if "repo.grep" in code:
                tags.add("used_grep")
            if "repo.symbols" in code or "repo.definition" in code:
                tags.add("used_symbols_or_definition")
            if "repo.references" in code:
                tags.add("used_references")
            if re.search(r"\b(?:llm_query|llm_query_batched|rlm_query)\(", code):
                tags.add("sub_calls")
            if "FINAL" in code and int(ev.get("iteration") or 0) == 1:
                tags.add("final_first_turn")
        elif kind == "note" and "loop" in str(ev.get("message") or ""):
            tags.add("loop_note")
        elif kind == "end" and int(ev.get("depth") or 0) == 0:
            answer = str(ev.get("answer") or "").strip()
            if not answer or answer == "None" or answer.startswith("No final answer"):
                tags.add("final_none")
            if ev.get("status") == "limit_reached":
                tags.add("limit_reached")
    return tags


def diagnose(records: Sequence[dict[str, Any]], *, show: int = 0) -> str:
    rlm = [r for r in records if str(r.get("method", "")).startswith("rlm")]
    if not rlm:
        return "(no RLM records)\n"
    lines: list[str] = []
    for method in sorted({r["method"] for r in rlm}):
        rs = [r for r in rlm if r["method"] == method]
        all_tags: Counter[str] = Counter()
        wrong_tags: Counter[str] = Counter()
        wrong = [r for r in rs if float(r["score"]["value"]) < 1.0]
        for r in rs:
            path = Path(r["trajectory"]) if r.get("trajectory") else None
            if path is None or not path.exists():
                continue
            tags = tag_trajectory(path)
            all_tags.update(tags)
            if r in wrong:
                wrong_tags.update(tags)
        lines.append(f"{method}: {len(rs)} queries, {len(wrong)} not fully right")
        lines.append(f"  {'pattern':<28} {'all':>4} {'wrong':>5}  meaning")
        for tag, meaning in TAGS.items():
            lines.append(f"  {tag:<28} {all_tags[tag]:>4} {wrong_tags[tag]:>5}  {meaning}")
        lines.append("")
        for r in wrong[:show]:
            path = Path(r["trajectory"]) if r.get("trajectory") else None
            if path is not None and path.exists():
                lines.append(f"---- {r['question_id']} (score {r['score']['value']})")
                lines.append(format_trajectory(read_trajectory(path)))
    return "\n".join(lines).rstrip() + "\n"
