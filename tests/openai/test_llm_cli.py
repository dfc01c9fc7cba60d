"""A chat client nobody here wrote, against ``/v1``: simonw's ``llm`` CLI (the ``llm``
package, in the dev extra) with an OpenAI-compatible model entry.

It is driven as its users drive it: ``extra-openai-models.yaml`` in its user directory, a
key given with ``--key``, a document piped on stdin with the question as the prompt,
streamed and not, a system prompt, and ``-c`` to continue the conversation (``llm`` sends
the earlier turns itself, so they become the follow-up's context).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlm_mcp.testing import LoopbackLLMServer, Responder

from .conftest import MODEL, TOKEN, Served

Script = Callable[[Responder], LoopbackLLMServer]

LLM = Path(sys.executable).with_name("llm")
pytestmark = pytest.mark.skipif(not LLM.exists(), reason="the llm CLI is not installed")

NEEDLE = "NEEDLE: the boiler room key hangs on hook 42"
FIND_NEEDLE = (
    "```python\n"
    "line = next(l for l in context.splitlines() if 'NEEDLE:' in l)\n"
    "FINAL(line.strip())\n"
    "```"
)


def llm_home(tmp: Path, served: Served) -> Path:
    home = tmp / "llm-home"
    home.mkdir(exist_ok=True)
    entry = {
        "model_id": "rlm",
        "model_name": MODEL,
        "api_base": served.base_url,
        "api_key_name": "rlm",
    }
    (home / "extra-openai-models.yaml").write_text(json.dumps([entry]))  # JSON is YAML
    return home


def run_llm(
    home: Path, *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    env["LLM_USER_PATH"] = str(home)
    return subprocess.run(
        [str(LLM), *args, "--key", TOKEN],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def document() -> str:
    lines = [f"row {i:06d}: an ordinary line of the maintenance log" for i in range(20_000)]
    lines.insert(13_000, NEEDLE)
    return "\n".join(lines)


def roots_messages(llm: LoopbackLLMServer, before: int) -> list[str]:
    return [json.dumps(r.json["messages"]) for r in llm.requests[before:]]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_the_llm_cli_answers_from_a_piped_document_without_it_in_the_window(
    served: Served, script: Script, tmp_path: Path, stream: bool
) -> None:
    home = llm_home(tmp_path, served)
    llm = script(lambda body: FIND_NEEDLE)
    before = len(llm.requests)
    flags = [] if stream else ["--no-stream"]
    out = run_llm(
        home,
        "-m",
        "rlm",
        *flags,
        "-s",
        "Answer from the log.",
        "Which line says where the key hangs?",
        stdin=document(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == NEEDLE
    sent = roots_messages(llm, before)
    assert sent, "the root model was never called"
    # The piped megabyte is the REPL's context; no root call carries it.
    assert all(len(m) < 100_000 for m in sent)


def test_llm_continue_sends_the_earlier_turns_as_the_follow_ups_context(
    served: Served, script: Script, tmp_path: Path
) -> None:
    home = llm_home(tmp_path, served)
    replies = iter(
        [
            "```python\nFINAL('The answer is in row 13000.')\n```",
            # The follow-up's code reads the earlier turn out of its context.
            "```python\nFINAL('earlier: ' + ('row 13000' in context and 'yes' or 'no'))\n```",
        ]
    )

    def reply(body: dict[str, Any]) -> str:
        return next(replies)

    script(reply)
    first = run_llm(home, "-m", "rlm", "--no-stream", "Where is the key?")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "The answer is in row 13000."
    again = run_llm(home, "-c", "--no-stream", "Did you say a row number?")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "earlier: yes"


def test_a_wrong_key_is_a_clear_failure_in_the_llm_cli(served: Served, tmp_path: Path) -> None:
    home = llm_home(tmp_path, served)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    env["LLM_USER_PATH"] = str(home)
    out = subprocess.run(
        [str(LLM), "-m", "rlm", "--no-stream", "hello", "--key", "not-the-token"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "401" in out.stderr or "auth" in out.stderr.lower(), out.stderr
