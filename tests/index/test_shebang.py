"""A script without an extension is parsed in the language its shebang names."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.index import Repository
from rlm_mcp.index.parse.languages import language_for_path
from tests.index.index_helpers import write

SCRIPTS = {
    "bin/deploy": ("#!/usr/bin/env python3\n\ndef deploy_site():\n    pass\n", "deploy_site"),
    "bin/build": ("#!/bin/bash\nbuild_all() {\n  make\n}\n", "build_all"),
    "bin/serve": ("#!/usr/bin/env node\nfunction serveApp() {}\n", "serveApp"),
    "bin/release": ("#!/usr/bin/env ruby\ndef cut_release\nend\n", "cut_release"),
    "bin/migrate": (
        "#!/usr/bin/env -S python3.11 -u\ndef run_migrations():\n    pass\n",
        "run_migrations",
    ),
}


@pytest.mark.parametrize("rel", sorted(SCRIPTS))
def test_the_definitions_of_an_extensionless_script_are_found_by_its_shebang(
    tmp_path: Path, loader: Callable[..., Repository], rel: str
) -> None:
    body, name = SCRIPTS[rel]
    write(tmp_path, {rel: body})
    os.chmod(tmp_path / rel, 0o755)
    repo = loader(tmp_path)
    assert [(d.name, d.path) for d in repo.symbols(name, match="exact")] == [(name, rel)]


@pytest.mark.parametrize(
    ("line", "language"),
    [
        ("#!/usr/bin/env python3", "python"),
        ("#!/usr/bin/python3.11", "python"),
        ("#! /usr/bin/env python", "python"),
        ("#!/usr/bin/env -S python3 -u", "python"),
        ("#!/usr/bin/env -Spython3", "python"),
        ("#!/usr/bin/env --split-string=python3 -u", "python"),
        ("#!/usr/bin/env -i PYTHONPATH=. python3", "python"),
        ("#!/usr/bin/env -u LANG python3", "python"),
        ("#!/usr/local/bin/pypy3", "python"),
        ("#!/bin/bash", "bash"),
        ("#!/bin/sh -e", "bash"),
        ("#!/usr/bin/env bash", "bash"),
        ("#!/usr/bin/env zsh", "bash"),
        ("#!/usr/bin/env node", "javascript"),
        ("#!/usr/bin/env ruby2.7", "ruby"),
        ("#!/usr/bin/perl -w", "perl"),
        ("#!/usr/bin/env php", "php"),
        ("#!/usr/bin/env lua5.4", "lua"),
        ("#!/usr/bin/env Rscript", "r"),
        ("#!/usr/bin/env julia", "julia"),
        ("#!/usr/bin/env elixir", "elixir"),
    ],
)
def test_the_shebang_names_the_language(line: str, language: str) -> None:
    assert language_for_path("bin/tool", line) == language


@pytest.mark.parametrize(
    ("path", "line", "language"),
    [
        ("tool.py", "#!/bin/bash", "python"),
        ("Makefile", "#!/usr/bin/env python3", "make"),
        ("bin/tool", "# not a shebang", None),
        ("bin/tool", "#!/usr/bin/env", None),
        ("bin/tool", "#!/usr/bin/unknown-interpreter", None),
        ("bin/tool", "", None),
        ("bin/tool", None, None),
    ],
)
def test_the_name_wins_over_the_shebang_and_no_shebang_means_no_language(
    path: str, line: str | None, language: str | None
) -> None:
    assert language_for_path(path, line) == language
