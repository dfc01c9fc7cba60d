"""Use rlm-mcp as a library: load a repository, ask a question, print the answer and its cost.

    python examples/library_use.py PATH "QUESTION" --model gpt-4.1 [--base-url URL]

The API key comes from --api-key or the RLM_API_KEY / OPENAI_API_KEY variable.
Point --base-url at any OpenAI-compatible server (Ollama, vLLM, llama.cpp...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

from rlm_mcp.budget import Limits
from rlm_mcp.config import IndexSettings, ModelEndpoint, Settings
from rlm_mcp.service import RlmService


async def ask(args: argparse.Namespace) -> int:
    endpoint = ModelEndpoint(
        model=args.model,
        base_url=args.base_url,
        api_key=args.api_key or os.environ.get("RLM_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    )
    settings = Settings(
        index=IndexSettings(watch=False, cache_dir=args.cache_dir),
        root_model=endpoint,
        trajectory_dir=args.trajectory_dir,
    )
    limits = replace(Limits(), max_llm_calls=args.max_llm_calls)
    service = RlmService(settings, limits=limits)
    try:
        loaded, report = await service.load(args.path, confine=False)
        print(
            f"loaded {loaded.name}: {report.files} files, {report.tokens} tokens",
            file=sys.stderr,
        )
        result = await service.query(args.question)
    finally:
        await service.aclose()
    print(result.answer)
    print(
        f"status={result.status} calls={result.usage.calls} cost=${result.usage.cost_usd} "
        f"evidence={', '.join(str(e) for e in result.evidence) or 'none'}",
        file=sys.stderr,
    )
    return 0 if result.status == "completed" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", type=Path)
    parser.add_argument("question")
    parser.add_argument("--model", default=os.environ.get("RLM_MODEL", "gpt-4.1-mini"))
    parser.add_argument("--base-url", default=os.environ.get("RLM_BASE_URL"))
    parser.add_argument("--api-key")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--trajectory-dir", type=Path)
    parser.add_argument("--max-llm-calls", type=int, default=20)
    return asyncio.run(ask(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
