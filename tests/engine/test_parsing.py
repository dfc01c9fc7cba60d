from __future__ import annotations

from rlm_mcp.engine.parsing import extract_code_blocks, mentions_final_in_prose, normalize_code


def test_several_python_blocks_are_returned_in_order() -> None:
    reply = "a\n```python\nx = 1\n```\nb\n```py\ny = 2\n```\n"
    assert extract_code_blocks(reply) == ["x = 1\n", "y = 2\n"]


def test_output_blocks_and_other_languages_do_not_run() -> None:
    reply = (
        "```python\nx = 1\n```\nOutput:\n```\n1\n```\n```bash\nrm -rf /\n```\n```text\nhello\n```"
    )
    assert extract_code_blocks(reply) == ["x = 1\n"]


def test_untagged_block_that_is_python_runs() -> None:
    assert extract_code_blocks("Here:\n```\nprint(2)\n```") == ["print(2)\n"]


def test_unterminated_fence_runs_to_the_end() -> None:
    assert extract_code_blocks("```python\nFINAL('x')") == ["FINAL('x')\n"]


def test_console_prompts_are_stripped() -> None:
    assert extract_code_blocks("```pycon\n>>> x = 3\n>>> print(x)\n3\n```") == ["x = 3\nprint(x)\n"]


def test_final_in_prose_is_detected_but_not_in_code() -> None:
    assert mentions_final_in_prose('So FINAL("x")')
    assert not mentions_final_in_prose('```python\nFINAL("x")\n```')


def test_normalized_code_ignores_whitespace_and_comments() -> None:
    assert normalize_code("x  =  1   # note\n\n") == normalize_code("x = 1")


def test_a_block_indented_inside_a_markdown_list_is_dedented() -> None:
    reply = "1. Search:\n   ```python\n   hits = repo.grep('x')\n   print(hits)\n   ```\n"
    assert extract_code_blocks(reply) == ["hits = repo.grep('x')\nprint(hits)\n"]
