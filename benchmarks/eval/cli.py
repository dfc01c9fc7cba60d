"""Command line: ``python -m benchmarks.eval {generate,run,report} ...``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from benchmarks.eval.corpus import SOURCE_EXTENSIONS, RepoSpec
from benchmarks.eval.methods import (
    DEFAULT_SAMPLING_SEED,
    DEFAULT_TEMPERATURE,
    METHODS,
    NO_MODEL,
    PROMPT_VARIANTS,
    STRATEGIES,
    RLMSettings,
)
from benchmarks.eval.questions import DEFAULT_SEED, SUITES, QuestionSet, generate_set, load_set
from benchmarks.eval.report import BUCKETS, bucket_of, write_reports
from benchmarks.eval.runner import RESULTS_FILE, RunConfig, dedupe, read_records, run_set
from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.backends.pricing import Pricing
from rlm_mcp.budget import Limits
from rlm_mcp.config import ModelEndpoint, SandboxSettings

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SET = RESULTS / "set.json"
DEFAULT_CACHE = RESULTS / "cache"
# Named sets: the file each is written to and the results folder its runs use.
NAMED_SETS = {
    "stdlib": (DEFAULT_SET, RESULTS),
    "dev": (RESULTS / "dev.json", RESULTS / "dev"),
}
DEFAULT_PER_REPO = {"stdlib": 3, "dev": 6}


def _say(msg: str) -> None:
    print(msg, flush=True)


def _temperature(value: str) -> float | None:
    """``--temperature``: a number; ``none`` or a negative value sends no temperature."""
    if value.strip().lower() in ("none", "null", "off", ""):
        return None
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a temperature: {value!r}") from None
    return None if t < 0 else t


def _sampling_seed(value: str) -> int | None:
    """``--sampling-seed``: an integer; ``none`` or a negative value sends no seed."""
    if value.strip().lower() in ("none", "null", "off", ""):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seed: {value!r}") from None
    return None if n < 0 else n


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {value!r}")
    return n


def _resolve(args: argparse.Namespace) -> None:
    """``--set`` names a set (``stdlib``, ``dev``) or a file; fill in the suite and folders."""
    value = str(args.set)
    suite = getattr(args, "suite", None)
    if value in NAMED_SETS:
        args.set, out = NAMED_SETS[value]
        suite = suite or value
    else:
        args.set, out = Path(value), RESULTS
        if suite is None and args.set.exists():
            suite = str(load_set(args.set).recipe.get("suite", "stdlib"))
    args.suite = suite or "stdlib"
    if getattr(args, "out", "unset") is None:
        args.out = out
    if getattr(args, "per_repo", "unset") is None:
        args.per_repo = DEFAULT_PER_REPO.get(args.suite, 3)


def _specs(
    names: str | None, pypi: Sequence[str], suite: str = "stdlib", npm: Sequence[str] = ()
) -> list[RepoSpec]:
    specs = list(SUITES[suite])
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {s.name: s for s in specs}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SystemExit(
                f"unknown repositories: {', '.join(unknown)}; known: {', '.join(known)}"
            )
        specs = [known[n] for n in wanted]
    exts = (".py",) if suite == "stdlib" else SOURCE_EXTENSIONS
    for req in pypi:
        name = "pypi-" + req.split("==")[0].lower()
        specs.append(RepoSpec(name, ("",), source=f"pypi:{req}", extensions=exts))
    for req in npm:
        name = "npm-" + req.rsplit("@", 1)[0].lower().replace("/", "-").lstrip("@")
        specs.append(RepoSpec(name, ("",), source=f"npm:{req}", extensions=SOURCE_EXTENSIONS))
    return specs


def cmd_generate(args: argparse.Namespace) -> int:
    qset = generate_set(
        args.cache,
        specs=_specs(args.repos, args.pypi, args.suite, args.npm),
        per_repo=args.per_repo,
        seed=args.seed,
        source_root=args.source_root,
        log=_say,
        suite=args.suite,
    )
    qset.save(args.set)
    _say(f"wrote {len(qset.questions)} questions over {len(qset.repos)} repositories to {args.set}")
    _say(set_statistics(qset))
    return 0


def set_statistics(qset: QuestionSet) -> str:
    """Repositories (size, languages) and questions per kind and size bucket."""
    lines = [f"set {qset.digest} (seed {qset.seed}):"]
    for name, info in qset.repos.items():
        langs = ", ".join(f"{k} {v:,}" for k, v in info.languages.items()) or "python"
        n = sum(1 for q in qset.questions if q.repo == name)
        lines.append(
            f"  {name:<36} {bucket_of(info.tokens):>9} {info.files:>5} files "
            f"~{info.tokens:>9,} tokens  {n} questions  [{langs}]"
        )
    kinds = sorted({q.kind for q in qset.questions})
    buckets = [b for b, _ in BUCKETS]
    counts: dict[tuple[str, str], int] = {}
    for q in qset.questions:
        key = (q.kind, bucket_of(qset.repos[q.repo].tokens))
        counts[key] = counts.get(key, 0) + 1
    used = [b for b in buckets if any((k, b) in counts for k in kinds)]
    lines.append("  " + f"{'kind':<13}" + "".join(f"{b:>10}" for b in used) + f"{'all':>6}")
    for kind in kinds:
        row = "".join(f"{counts.get((kind, b), 0):>10}" for b in used)
        total = sum(counts.get((kind, b), 0) for b in used)
        lines.append(f"  {kind:<13}{row}{total:>6}")
    by_lang: dict[str, int] = {}
    for q in qset.questions:
        lang = str(q.expected.get("language") or "python")
        by_lang[lang] = by_lang.get(lang, 0) + 1
    lines.append(
        "  questions by language: " + ", ".join(f"{k} {v}" for k, v in sorted(by_lang.items()))
    )
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    if not args.set.exists():
        _say(f"{args.set} does not exist; generating it (seed {args.seed})")
        generate_set(
            args.cache,
            specs=_specs(args.repos, [], args.suite),
            per_repo=args.per_repo,
            seed=args.seed,
            source_root=args.source_root,
            log=_say,
            suite=args.suite,
        ).save(args.set)
    qset = load_set(args.set)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown methods: {', '.join(bad)}; known: {', '.join(METHODS)}")
    needs_model = any(m not in NO_MODEL for m in methods)
    if needs_model and not (args.base_url and args.model):
        raise SystemExit("--base-url and --model are needed for the direct and rlm methods")
    prices = {}
    if args.price_in is not None or args.price_out is not None:
        prices[args.model] = (Decimal(str(args.price_in or 0)), Decimal(str(args.price_out or 0)))
    pricing = Pricing(prices)
    rlm_window = args.rlm_window or int(args.window * 0.8)
    limits = Limits(
        max_depth=args.max_depth,
        max_iterations=args.max_iterations,
        max_llm_calls=args.max_llm_calls,
        max_wall_seconds=args.max_wall_seconds,
        max_cost_usd=Decimal(str(args.budget_usd)) if args.budget_usd is not None else Decimal(1),
        max_concurrency=args.concurrency,
    )
    cfg = RunConfig(
        out=args.out,
        cache=args.cache,
        window=args.window,
        direct_max_output=args.direct_max_output,
        chars_per_token=args.chars_per_token,
        rlm=RLMSettings(
            limits=limits,
            sandbox=SandboxSettings(),
            root_window=rlm_window,
            sub_window=rlm_window,
            root_max_output=args.root_max_output,
            sub_max_output=args.sub_max_output,
            trajectory_dir=args.out / "trajectories",
            variant=args.prompt_variant,
            strategy=args.strategy,
        ),
        methods=methods,
        budget_usd=Decimal(str(args.budget_usd)) if args.budget_usd is not None else None,
        budget_seconds=args.budget_seconds,
        max_questions=args.max_questions,
        source_root=args.source_root,
        order=args.order,
        only_repos=tuple(n.strip() for n in (args.only_repos or "").split(",") if n.strip()),
        repeats=args.repeats,
        temperature=args.temperature,
        sampling_seed=args.sampling_seed,
    )
    title = (
        f"model={args.model or '-'} window={args.window} rlm_window={rlm_window} "
        f"set={args.set.name} ({qset.digest}, seed {qset.seed}) "
        f"limits: iter={limits.max_iterations} calls={limits.max_llm_calls} "
        f"wall={limits.max_wall_seconds:g}s root_out={args.root_max_output} "
        f"sub_out={args.sub_max_output} variant={args.prompt_variant} "
        f"strategy={args.strategy} temperature={args.temperature} "
        f"sampling_seed={args.sampling_seed} repeats={args.repeats}"
    )
    _say(title)

    async def go() -> str:
        backend = None
        if needs_model:
            backend = OpenAICompatibleBackend(
                ModelEndpoint(
                    model=args.model,
                    base_url=args.base_url,
                    api_key=args.api_key,
                    timeout_seconds=args.timeout,
                    max_retries=1,
                    context_window=args.window,
                )
            )
        try:
            return await run_set(qset, cfg, backend, pricing=pricing, log=_say)
        finally:
            if backend is not None:
                await backend.aclose()

    code = 0
    try:
        why = asyncio.run(go())
        _say(f"stopped: {why}")
    except KeyboardInterrupt:
        _say("interrupted: the results file holds every finished pair; run again to resume")
        code = 130
    records = [
        r for r in dedupe(read_records(args.out / RESULTS_FILE)) if r.get("set") == qset.digest
    ]
    _say(write_reports(records, args.out, title=title))
    return code


def cmd_report(args: argparse.Namespace) -> int:
    records = dedupe(read_records(args.out / RESULTS_FILE))
    if args.set.exists() and not args.all_sets:
        digest = load_set(args.set).digest
        records = [r for r in records if r.get("set") == digest]
    _say(write_reports(records, args.out, title=f"{args.out / RESULTS_FILE}"))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from benchmarks.eval.diagnose import diagnose

    records = dedupe(read_records(args.out / RESULTS_FILE))
    if args.set.exists() and not args.all_sets:
        digest = load_set(args.set).digest
        records = [r for r in records if r.get("set") == digest]
    text = diagnose(records, show=args.show)
    (args.out / "diagnosis.txt").write_text(text, encoding="utf-8")
    _say(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    set_help = (
        "a named set (stdlib: results/set.json, the stdlib kinds; dev: results/dev.json, "
        "locate/impact/how over PyPI, npm and Debian source packages) or a question-set JSON file"
    )

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", default="stdlib", help=set_help)
        p.add_argument(
            "--suite",
            choices=sorted(SUITES),
            help="question kinds and repositories for a set given as a file (default: stdlib)",
        )
        p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="repositories and indexes")
        p.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help="the question set's seed (generation)"
        )
        p.add_argument("--per-repo", type=int, help="questions per repository (stdlib 3, dev 6)")
        p.add_argument("--repos", help="comma-separated subset of the suite's repositories")
        p.add_argument("--source-root", type=Path, help="copy members from here, not the stdlib")

    g = sub.add_parser("generate", help="build repositories and a question set")
    common(g)
    g.add_argument("--pypi", action="append", default=[], help="add an sdist, e.g. attrs==24.2.0")
    g.add_argument("--npm", action="append", default=[], help="add a package, e.g. zod@3.23.8")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run the methods on the set (resumable)")
    common(r)
    r.add_argument("--base-url")
    r.add_argument("--model")
    r.add_argument("--api-key")
    r.add_argument("--window", type=int, default=8192, help="the model's context window")
    r.add_argument("--rlm-window", type=int, help="window the engine sizes prompts for")
    r.add_argument("--out", type=Path, help="results folder (default: results/, dev: results/dev/)")
    r.add_argument("--methods", default=",".join(METHODS))
    r.add_argument("--budget-usd", type=float)
    r.add_argument("--budget-seconds", type=float)
    r.add_argument("--max-questions", type=int)
    r.add_argument("--price-in", type=float, help="USD per million input tokens")
    r.add_argument("--price-out", type=float, help="USD per million output tokens")
    r.add_argument("--timeout", type=float, default=300.0, help="per HTTP request")
    r.add_argument("--chars-per-token", type=float, default=3.0, help="for sizing direct prompts")
    r.add_argument("--direct-max-output", type=int, default=128)
    r.add_argument("--root-max-output", type=int, default=512)
    r.add_argument("--sub-max-output", type=int, default=256)
    r.add_argument("--max-iterations", type=int, default=6)
    r.add_argument("--max-llm-calls", type=int, default=12)
    r.add_argument("--max-wall-seconds", type=float, default=300.0)
    r.add_argument("--max-depth", type=int, default=1)
    r.add_argument("--concurrency", type=int, default=1)
    r.add_argument(
        "--order",
        choices=["spread", "size"],
        default="spread",
        help="repository order: spread alternates small and large (a cut-short run spans sizes)",
    )
    r.add_argument("--only-repos", help="comma-separated repositories of the set to run")
    r.add_argument("--prompt-variant", choices=sorted(PROMPT_VARIANTS), default="default")
    r.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="explore",
        help="how an RLM query starts (records: rlm, rlm:locate-first, rlm:locate-only)",
    )
    r.add_argument(
        "--temperature",
        type=_temperature,
        default=DEFAULT_TEMPERATURE,
        help="for the direct and rlm calls (default 0); 'none' or negative sends none",
    )
    r.add_argument(
        "--sampling-seed",
        type=_sampling_seed,
        default=DEFAULT_SAMPLING_SEED,
        help=f"sampling seed of repeat 0 (repeat r uses it + r; default {DEFAULT_SAMPLING_SEED});"
        " 'none' or negative sends none. --seed is the question set's",
    )
    r.add_argument(
        "--repeats",
        type=_positive,
        default=1,
        help="run each (question, method) pair this many times (the report shows the spread)",
    )
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the table from a results file")
    p.add_argument("--out", type=Path)
    p.add_argument("--set", default="stdlib", help=set_help)
    p.add_argument("--all-sets", action="store_true", help="include records of other sets")
    p.set_defaults(func=cmd_report)

    d = sub.add_parser("diagnose", help="count RLM failure patterns in the trajectories")
    d.add_argument("--out", type=Path)
    d.add_argument("--set", default="stdlib", help=set_help)
    d.add_argument("--all-sets", action="store_true")
    d.add_argument("--show", type=int, default=0, help="print N wrong trajectories")
    d.set_defaults(func=cmd_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _resolve(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    t0 = time.monotonic()
    code: int = args.func(args)
    if args.command not in ("report", "diagnose"):
        _say(f"({time.monotonic() - t0:.0f}s)")
    return code
