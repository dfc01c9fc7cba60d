"""Tables (always) and a plot (when matplotlib is importable) from the results file."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "BUCKETS",
    "bucket_of",
    "kind_table",
    "plot",
    "repeat_of",
    "repeated_methods",
    "spread_table",
    "summarize",
    "summarize_kinds",
    "summarize_spread",
    "table",
]

RECALL_KEYS = ("recall@1", "recall@3", "recall@5")

# Upper bounds in tokens (the index's ~4-characters-per-token estimate).
BUCKETS: tuple[tuple[str, float], ...] = (
    ("<=8k", 8_192),
    ("8k-32k", 32_768),
    ("32k-128k", 131_072),
    ("128k-512k", 524_288),
    ("512k-2M", 2_097_152),
    (">2M", float("inf")),
)


def bucket_of(tokens: int) -> str:
    for label, upper in BUCKETS:
        if tokens <= upper:
            return label
    return BUCKETS[-1][0]


def repeat_of(record: dict[str, Any]) -> int:
    """A record's repeat index; records from before repeats existed are repeat 0."""
    return int(record.get("repeat") or 0)


def repeated_methods(records: Sequence[dict[str, Any]]) -> list[str]:
    """Methods whose records hold more than one repeat, in table order."""
    reps: defaultdict[str, set[int]] = defaultdict(set)
    for r in records:
        reps[str(r["method"])].add(repeat_of(r))
    return _method_order([m for m, rs in reps.items() if len(rs) > 1])


def _method_width(methods: Sequence[str]) -> int:
    """The method column: 14 wide, wider for longer keys (``rlm:locate-first:recipes``)."""
    return max([14, *(len(m) for m in methods)])


def _method_order(methods: Sequence[str]) -> list[str]:
    base = ["retrieval", "search", "direct", "rlm"]
    return [m for m in base if m in methods] + sorted(m for m in methods if m not in base)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates per (bucket, method) and per method, as plain data."""
    groups: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(bucket_of(int(r["repo_tokens"])), r["method"])].append(r)
        groups[("all", r["method"])].append(r)
    out: dict[str, Any] = {}
    for (bucket, method), rs in groups.items():
        n = len(rs)
        limits = Counter(str(r.get("limit")) for r in rs if r.get("limit"))
        statuses = Counter(str(r.get("status")) for r in rs)
        row: dict[str, Any] = {
            "n": n,
            "accuracy": sum(float(r["score"]["value"]) for r in rs) / n,
            "exact": sum(1 for r in rs if r["score"]["exact"]) / n,
            "input_tokens": sum(int(r.get("input_tokens", 0)) for r in rs) / n,
            "output_tokens": sum(int(r.get("output_tokens", 0)) for r in rs) / n,
            "cost_usd": str(sum((Decimal(str(r.get("cost_usd", "0"))) for r in rs), Decimal(0))),
            "wall_seconds": sum(float(r.get("wall_seconds", 0)) for r in rs) / n,
            "repo_tokens": sorted({int(r["repo_tokens"]) for r in rs}),
            "statuses": dict(statuses),
        }
        if method.startswith("rlm"):
            row.update(
                iterations=sum(int(r.get("iterations", 0)) for r in rs) / n,
                sub_calls=sum(int(r.get("sub_calls", 0)) for r in rs) / n,
                depth=max(int(r.get("depth", 0)) for r in rs),
                limits=dict(limits),
            )
        if method == "direct":
            fr = [float(r.get("included_fraction", 0)) for r in rs]
            row["included_fraction"] = sum(fr) / n
        repeats = len({repeat_of(r) for r in rs})
        if repeats > 1:
            row["repeats"] = repeats
        out.setdefault(bucket, {})[method] = row
    return out


def _kind_row(rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rs)
    row: dict[str, Any] = {
        "n": n,
        "accuracy": sum(float(r["score"]["value"]) for r in rs) / n,
        "exact": sum(1 for r in rs if r["score"]["exact"]) / n,
        "input_tokens": sum(int(r.get("input_tokens", 0)) for r in rs) / n,
        "wall_seconds": sum(float(r.get("wall_seconds", 0)) for r in rs) / n,
    }
    for key in RECALL_KEYS:
        vals = [
            float(r["score"]["metrics"][key]) for r in rs if key in r["score"].get("metrics", {})
        ]
        if vals:
            row[key] = sum(vals) / len(vals)
    return row


def summarize_kinds(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per kind, per size bucket (and ``all``), per method: accuracy, recall@k, tokens, time."""
    groups: defaultdict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        for bucket in (bucket_of(int(r["repo_tokens"])), "all"):
            groups[(str(r["kind"]), bucket, str(r["method"]))].append(r)
    out: dict[str, Any] = {}
    for (kind, bucket, method), rs in groups.items():
        out.setdefault(kind, {}).setdefault(bucket, {})[method] = _kind_row(rs)
    return out


def kind_table(records: Sequence[dict[str, Any]]) -> str:
    """One row per (kind, size bucket, method): acc, recall@1/3/5, in_tok and wall_s means."""
    if not records:
        return ""
    summary = summarize_kinds(records)
    methods = _method_order(sorted({r["method"] for r in records}))
    w = _method_width(methods)
    header = (
        f"{'kind':<13} {'bucket':<10} {'method':<{w}} {'n':>3} {'acc':>5} {'r@1':>5} {'r@3':>5} "
        f"{'r@5':>5} {'in_tok':>8} {'wall_s':>7}"
    )
    lines = ["By kind and size (means per question; r@k = path recall at k):", header]
    lines.append("-" * len(header))
    for kind in sorted(summary):
        order = [b for b, _ in BUCKETS if b in summary[kind]] + ["all"]
        for bucket in order:
            for method in methods:
                row = summary[kind][bucket].get(method)
                if row is None:
                    continue
                rec = "".join(f" {row[k]:>5.2f}" if k in row else f" {'-':>5}" for k in RECALL_KEYS)
                lines.append(
                    f"{kind:<13} {bucket:<10} {method:<{w}} {row['n']:>3} {row['accuracy']:>5.2f}"
                    f"{rec} {row['input_tokens']:>8.0f} {row['wall_seconds']:>7.1f}"
                )
        lines.append("")
    lines.append(
        "acc = the kind's main score: locate = exact location (first path:line inside the "
        "definition), impact = F1 over callers, how = recall@5 of the reference files;"
    )
    lines.append(
        "stdlib kinds as above. r@k: locate/impact/how only (share of reference files among "
        "the first k distinct paths cited, out of min(k, reference files))."
    )
    return "\n".join(lines) + "\n"


def _spread_row(rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per repeat, then its mean, min, max and sample standard deviation.

    A repeat counts when it answered every question of the group; repeats cut
    short (a budget, an interrupt: resume completes them) are left out and
    counted as ``partial_repeats``, unless no repeat is whole, when all count.
    """
    by_rep: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rs:
        by_rep[repeat_of(r)].append(r)
    questions = {r["question_id"] for r in rs}
    whole = [k for k, v in by_rep.items() if {r["question_id"] for r in v} == questions]
    used = sorted(whole or by_rep)
    accs = [sum(float(r["score"]["value"]) for r in by_rep[k]) / len(by_rep[k]) for k in used]
    exact = [sum(1 for r in by_rep[k] if r["score"]["exact"]) / len(by_rep[k]) for k in used]
    runs = [r for k in used for r in by_rep[k]]
    return {
        "n": len(questions),
        "repeats": len(used),
        "partial_repeats": len(by_rep) - len(used),
        "per_repeat": dict(zip(used, accs, strict=True)),
        "accuracy": statistics.fmean(accs),
        "accuracy_min": min(accs),
        "accuracy_max": max(accs),
        "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else None,
        "exact": statistics.fmean(exact),
        "input_tokens": sum(int(r.get("input_tokens", 0)) for r in runs) / len(runs),
        "wall_seconds": sum(float(r.get("wall_seconds", 0)) for r in runs) / len(runs),
    }


def summarize_spread(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """For methods run more than once: per kind (and ``all``), per bucket (and ``all``)."""
    methods = set(repeated_methods(records))
    groups: defaultdict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["method"] not in methods:
            continue
        for kind in (str(r["kind"]), "all"):
            for bucket in (bucket_of(int(r["repo_tokens"])), "all"):
                groups[(kind, bucket, str(r["method"]))].append(r)
    out: dict[str, Any] = {}
    for (kind, bucket, method), rs in groups.items():
        out.setdefault(kind, {}).setdefault(bucket, {})[method] = _spread_row(rs)
    return out


def spread_table(records: Sequence[dict[str, Any]]) -> str:
    """Methods run more than once: mean accuracy over repeats and its spread; else ``""``."""
    methods = repeated_methods(records)
    if not methods:
        return ""
    summary = summarize_spread(records)
    w = _method_width(methods)
    header = (
        f"{'kind':<13} {'bucket':<10} {'method':<{w}} {'n':>3} {'reps':>4} {'acc':>5} "
        f"{'min-max':>9} {'sd':>5} {'in_tok':>8} {'wall_s':>7}"
    )
    lines = [
        "Spread over repeats (methods run more than once; n = questions, reps = whole repeats, "
        "acc = mean over repeats of each repeat's accuracy):",
        header,
        "-" * len(header),
    ]
    kinds = [*sorted(k for k in summary if k != "all"), "all"]
    for kind in kinds:
        order = [b for b, _ in BUCKETS if b in summary[kind]] + ["all"]
        for bucket in order:
            for method in methods:
                row = summary[kind][bucket].get(method)
                if row is None:
                    continue
                span = f"{row['accuracy_min']:.2f}-{row['accuracy_max']:.2f}"
                sd = "-" if row["accuracy_sd"] is None else f"{row['accuracy_sd']:.2f}"
                partial = f" (+{row['partial_repeats']} partial)" if row["partial_repeats"] else ""
                lines.append(
                    f"{kind:<13} {bucket:<10} {method:<{w}} {row['n']:>3} {row['repeats']:>4} "
                    f"{row['accuracy']:>5.2f} {span:>9} {sd:>5} {row['input_tokens']:>8.0f} "
                    f"{row['wall_seconds']:>7.1f}{partial}"
                )
        lines.append("")
    lines.append(
        "min-max and sd (sample standard deviation, n-1) are over the repeats' accuracies; "
        "in_tok/wall_s = means per question and repeat;"
    )
    lines.append(
        "a repeat cut short is left out until resumed (partial). Repeat r samples with "
        "seed sampling_seed + r."
    )
    return "\n".join(lines) + "\n"


def _fmt_limits(limits: dict[str, int]) -> str:
    return ",".join(f"{k}x{v}" for k, v in sorted(limits.items())) or "-"


def table(records: Sequence[dict[str, Any]], *, title: str = "") -> str:
    """A fixed-width text table: one row per (size bucket, method), then totals."""
    if not records:
        return "(no results yet)\n"
    summary = summarize(records)
    methods = _method_order(sorted({r["method"] for r in records}))
    w = _method_width(methods)
    header = (
        f"{'bucket':<10} {'method':<{w}} {'n':>3} {'acc':>5} {'exact':>5} {'in_tok':>8} "
        f"{'out_tok':>7} {'cost$':>8} {'wall_s':>7} {'repo%':>6} {'iter':>4} {'sub':>4} "
        f"{'dep':>3} limits"
    )
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    order = [b for b, _ in BUCKETS if b in summary] + ["all"]
    for bucket in order:
        for method in methods:
            row = summary[bucket].get(method)
            if row is None:
                continue
            repo_pct = (
                f"{100 * row['included_fraction']:.0f}%" if "included_fraction" in row else ""
            )
            rlm = method.startswith("rlm")
            lines.append(
                f"{bucket:<10} {method:<{w}} {row['n']:>3} {row['accuracy']:>5.2f} "
                f"{row['exact']:>5.2f} {row['input_tokens']:>8.0f} {row['output_tokens']:>7.0f} "
                f"{Decimal(row['cost_usd']):>8.4f} {row['wall_seconds']:>7.1f} {repo_pct:>6} "
                + (
                    f"{row['iterations']:>4.1f} {row['sub_calls']:>4.1f} {row['depth']:>3} "
                    f"{_fmt_limits(row['limits'])}"
                    if rlm
                    else f"{'':>4} {'':>4} {'':>3}"
                )
            )
        if bucket != "all":
            lines.append("")
    lines.append("")
    lines.append(
        "acc = mean score (needle/count/locate: exact 0/1; relation questions and impact: F1; "
        "how: recall@5); exact = share fully right;"
    )
    lines.append(
        "in_tok/out_tok/wall_s = means per question; cost$ = total; repo% = share of the "
        "repository's tokens in the direct prompt;"
    )
    lines.append(
        "iter/sub = mean RLM root turns and sub-calls; dep = max depth; limits = limits hit."
    )
    repeated = repeated_methods(records)
    if repeated:
        lines.append(
            f"{', '.join(repeated)}: run more than once, so n counts runs (questions x repeats) "
            "and acc is over all runs; the spread over repeats is at the end."
        )
    kinds = sorted({r["kind"] for r in records})
    lines.append("")
    lines.append("By kind (acc, n):")
    for kind in kinds:
        parts = []
        for method in methods:
            rs = [r for r in records if r["kind"] == kind and r["method"] == method]
            if rs:
                acc = sum(float(r["score"]["value"]) for r in rs) / len(rs)
                parts.append(f"{method} {acc:.2f} ({len(rs)})")
        lines.append(f"  {kind:<13} " + "  ".join(parts))
    lines.append("")
    lines.append(kind_table(records))
    spread = spread_table(records)
    if spread:
        lines.append(spread)
    return "\n".join(lines).rstrip() + "\n"


def plot(records: Sequence[dict[str, Any]], path: Path, *, window: int | None = None) -> bool:
    """Accuracy against repository size per method; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by: defaultdict[str, defaultdict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by[r["method"]][int(r["repo_tokens"])].append(float(r["score"]["value"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    for method in _method_order(list(by)):
        xs = sorted(by[method])
        ys = [sum(by[method][x]) / len(by[method][x]) for x in xs]
        ax.plot(xs, ys, marker="o", label=method)
    if window:
        ax.axvline(window, color="grey", linestyle="--", label=f"window ({window})")
    ax.set_xscale("log")
    ax.set_xlabel("repository size (tokens, log scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_reports(records: Sequence[dict[str, Any]], out: Path, *, title: str = "") -> str:
    text = table(records, title=title)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text, encoding="utf-8")
    summary = summarize(records)
    summary["by_kind"] = summarize_kinds(records)
    spread = summarize_spread(records)
    if spread:
        summary["spread"] = spread
    (out / "summary.json").write_text(
        json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8"
    )
    windows = {int(r.get("window", 0)) for r in records if r.get("window")}
    plot(records, out / "accuracy_vs_size.png", window=min(windows) if windows else None)
    return text
