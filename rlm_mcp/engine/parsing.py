"""Extracting runnable code from a model's reply.

Only fenced blocks tagged as Python (or untagged) run. Anything else in the
reply — prose, fabricated "REPL output", a ``FINAL(...)`` written as text — is
ignored, because the final answer must come from executed code.
"""

from __future__ import annotations

import ast
import re
import textwrap

__all__ = [
    "extract_code_blocks",
    "mentions_final_in_prose",
    "normalize_code",
    "prose_answer",
    "without_turn_echo",
]

_RUNNABLE_TAGS = {"", "python", "py", "python3", "repl", "ipython", "pycon"}
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*$", re.MULTILINE)
_PYCON_PROMPT = re.compile(r"^(>>> |\.\.\. )", re.MULTILINE)
_FINAL_CALL = re.compile(r"\bFINAL(?:_VAR)?\s*\(")
_TURN_ECHO = re.compile(r"^\s*\[?turn \d+ of \d+\]?\s*", re.IGNORECASE)


def extract_code_blocks(reply: str) -> list[str]:
    """Return the runnable code blocks of ``reply``, in order.

    An unterminated last fence runs to the end of the reply (models often stop
    mid-block when they hit their output limit). A block of a non-Python
    language (``output``, ``text``, ``bash``...) is skipped.
    """
    blocks: list[str] = []
    pos = 0
    while True:
        opening = _FENCE.search(reply, pos)
        if opening is None:
            break
        fence, tag = opening.group(1), opening.group(2).lower()
        body_start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end_match = closing.search(reply, body_start)
        body = reply[body_start : end_match.start()] if end_match else reply[body_start:]
        pos = end_match.end() if end_match else len(reply)
        if tag in _RUNNABLE_TAGS and not (
            tag == "" and _is_fabricated_output(reply, opening.start(), body)
        ):
            code = _strip_prompts(body) if tag == "pycon" or _looks_like_pycon(body) else body
            code = textwrap.dedent(code)
            if code.strip():
                blocks.append(code.rstrip() + "\n")
        if end_match is None:
            break
    return blocks


_OUTPUT_LABEL = re.compile(r"(output|result|returns?|prints?|console|stdout)\W*$", re.IGNORECASE)


def _is_fabricated_output(reply: str, fence_start: int, body: str) -> bool:
    """An untagged block introduced as output, or that is not Python, is not code to run."""
    before = reply[:fence_start].rstrip().rsplit("\n", 1)[-1]
    if _OUTPUT_LABEL.search(before):
        return True
    try:
        ast.parse(textwrap.dedent(_strip_prompts(body) if _looks_like_pycon(body) else body))
    except SyntaxError:
        return True
    return False


def _looks_like_pycon(body: str) -> bool:
    lines = [ln for ln in body.splitlines() if ln.strip()]
    return bool(lines) and all(_PYCON_PROMPT.match(ln) for ln in lines)


def _strip_prompts(body: str) -> str:
    return "\n".join(
        _PYCON_PROMPT.sub("", ln) for ln in body.splitlines() if _PYCON_PROMPT.match(ln)
    )


def mentions_final_in_prose(reply: str) -> bool:
    """True when the reply calls FINAL outside any code block (which does nothing)."""
    stripped = reply
    for block in extract_code_blocks(reply):
        stripped = stripped.replace(block.rstrip(), "")
    return bool(_FINAL_CALL.search(stripped))


def normalize_code(code: str) -> str:
    """A canonical form for loop detection: whitespace and comments do not count."""
    lines = []
    for line in code.splitlines():
        text = (
            line.split("#", 1)[0].rstrip()
            if "#" in line and "'" not in line and '"' not in line
            else line.rstrip()
        )
        if text.strip():
            lines.append(" ".join(text.split()))
    return "\n".join(lines)


def without_turn_echo(text: str) -> str:
    """``text`` without a leading ``[turn 3 of 16]`` copied from the prompt."""
    return _TURN_ECHO.sub("", text)


def prose_answer(reply: str) -> str:
    """A reply without code that reads like an answer: offered back as a FINAL(...) call.

    Small models often answer in prose; showing them the exact call that would
    submit it turns a wasted turn into a finished query (still from executed code).
    """
    text = without_turn_echo(reply.strip()).strip()
    if len(text) < 40:
        return ""
    return repr(text[:800])
