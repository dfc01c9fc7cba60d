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

from benchmarks.eval.corpus import DEFAULT_REPOS, RepoSpec
from benchmarks.eval.methods import METHODS, PROMPT_VARIANTS, RLMSettings
from benchmarks.eval.questions import DEFAULT_SEED, generate_set, load_set
from benchmarks.eval.report import write_reports
from benchmarks.eval.runner import RESULTS_FILE, RunConfig, dedupe, read_records, run_set
from rlm_mcp.backends import OpenAICompatibleBackend
from rlm_mcp.backends.pricing import Pricing
from rlm_mcp.budget import Limits
from rlm_mcp.config import ModelEndpoint, SandboxSettings

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SET = RESULTS / "set.json"
DEFAULT_CACHE = RESULTS / "cache"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _specs(names: str | None, pypi: Sequence[str]) -> list[RepoSpec]:
    specs = list(DEFAULT_REPOS)
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {s.name: s for s in specs}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SystemExit(
                f"unknown repositories: {', '.join(unknown)}; known: {', '.join(known)}"
            )
        specs = [known[n] for n in wanted]
    for req in pypi:
        name = "pypi-" + req.split("==")[0].lower()
        specs.append(RepoSpec(name, ("",), source=f"pypi:{req}"))
    return specs


def cmd_generate(args: argparse.Namespace) -> int:
    qset = generate_set(
        args.cache,
        specs=_specs(args.repos, args.pypi),
        per_repo=args.per_repo,
        seed=args.seed,
        source_root=args.source_root,
        log=_say,
    )
    qset.save(args.set)
    _say(f"wrote {len(qset.questions)} questions over {len(qset.repos)} repositories to {args.set}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.set.exists():
        _say(f"{args.set} does not exist; generating it (seed {args.seed})")
        generate_set(
            args.cache,
            specs=_specs(args.repos, []),
            per_repo=args.per_repo,
            seed=args.seed,
            source_root=args.source_root,
            log=_say,
        ).save(args.set)
    qset = load_set(args.set)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown methods: {', '.join(bad)}; known: {', '.join(METHODS)}")
    needs_model = any(m != "retrieval" for m in methods)
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
        ),
        methods=methods,
        budget_usd=Decimal(str(args.budget_usd)) if args.budget_usd is not None else None,
        budget_seconds=args.budget_seconds,
        max_questions=args.max_questions,
        source_root=args.source_root,
        order=args.order,
        only_repos=tuple(n.strip() for n in (args.only_repos or "").split(",") if n.strip()),
    )
    title = (
        f"model={args.model or '-'} window={args.window} rlm_window={rlm_window} "
        f"set={args.set.name} ({qset.digest}, seed {qset.seed}) "
        f"limits: iter={limits.max_iterations} calls={limits.max_llm_calls} "
        f"wall={limits.max_wall_seconds:g}s root_out={args.root_max_output} "
        f"sub_out={args.sub_max_output} variant={args.prompt_variant}"
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

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", type=Path, default=DEFAULT_SET, help="question-set JSON file")
        p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="repositories and indexes")
        p.add_argument("--seed", type=int, default=DEFAULT_SEED)
        p.add_argument("--per-repo", type=int, default=3, help="questions per repository")
        p.add_argument("--repos", help="comma-separated subset of the default repositories")
        p.add_argument("--source-root", type=Path, help="copy members from here, not the stdlib")

    g = sub.add_parser("generate", help="build repositories and a question set")
    common(g)
    g.add_argument("--pypi", action="append", default=[], help="add an sdist, e.g. attrs==24.2.0")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run the methods on the set (resumable)")
    common(r)
    r.add_argument("--base-url")
    r.add_argument("--model")
    r.add_argument("--api-key")
    r.add_argument("--window", type=int, default=8192, help="the model's context window")
    r.add_argument("--rlm-window", type=int, help="window the engine sizes prompts for")
    r.add_argument("--out", type=Path, default=RESULTS)
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
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the table from a results file")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--set", type=Path, default=DEFAULT_SET)
    p.add_argument("--all-sets", action="store_true", help="include records of other sets")
    p.set_defaults(func=cmd_report)

    d = sub.add_parser("diagnose", help="count RLM failure patterns in the trajectories")
    d.add_argument("--out", type=Path, default=RESULTS)
    d.add_argument("--set", type=Path, default=DEFAULT_SET)
    d.add_argument("--all-sets", action="store_true")
    d.add_argument("--show", type=int, default=0, help="print N wrong trajectories")
    d.set_defaults(func=cmd_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    t0 = time.monotonic()
    code: int = args.func(args)
    if args.command not in ("report", "diagnose"):
        _say(f"({time.monotonic() - t0:.0f}s)")
    return code
