"""Map file paths to tree-sitter language names.

The names are those of ``tree_sitter_language_pack`` so the result can be
handed straight to ``get_language``/``get_parser``. Languages without a tags
query are still recognised, so the load report can count them.

The name decides. A file whose name says nothing (``bin/deploy``, a script
installed without its extension) is recognised by the interpreter its
shebang line names, as the kernel would run it: ``#!/usr/bin/env -S
python3.11 -u`` is Python.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import PurePosixPath

__all__ = [
    "EXTENSIONS",
    "FILENAMES",
    "INTERPRETERS",
    "TAGGED_LANGUAGES",
    "has_tags",
    "language_for_path",
    "language_for_shebang",
]

EXTENSIONS: dict[str, str] = {
    # Languages with a tags query.
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".sc": "scala",
    ".lua": "lua",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "bash",
    ".ex": "elixir",
    ".exs": "elixir",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".mli": "ocaml_interface",
    ".dart": "dart",
    ".zig": "zig",
    ".jl": "julia",
    ".r": "r",
    ".sol": "solidity",
    # Recognised for counting only.
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".json": "json",
    ".jsonc": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".html": "html",
    ".htm": "html",
    ".xml": "xml",
    ".css": "css",
    ".scss": "scss",
    ".sass": "scss",
    ".less": "css",
    ".sql": "sql",
    ".proto": "proto",
    ".graphql": "graphql",
    ".gql": "graphql",
    ".tf": "hcl",
    ".hcl": "hcl",
    ".vue": "vue",
    ".svelte": "svelte",
    ".mk": "make",
    ".cmake": "cmake",
    ".dockerfile": "dockerfile",
    ".ini": "ini",
    ".cfg": "ini",
    ".erl": "erlang",
    ".hrl": "erlang",
    ".clj": "clojure",
    ".cljs": "clojure",
    ".el": "elisp",
    ".nix": "nix",
    ".pl": "perl",
    ".pm": "perl",
    ".ps1": "powershell",
    ".vim": "vim",
    ".tex": "latex",
    ".fs": "fsharp",
    ".fsx": "fsharp",
    ".m": "objc",
    ".mm": "objc",
    ".groovy": "groovy",
    ".gradle": "groovy",
    ".v": "verilog",
    ".sv": "verilog",
    ".vhd": "vhdl",
    ".asm": "asm",
    ".s": "asm",
    ".nim": "nim",
    ".cu": "cuda",
    ".glsl": "glsl",
    ".wgsl": "wgsl",
    ".csv": "csv",
}

FILENAMES: dict[str, str] = {
    "makefile": "make",
    "gnumakefile": "make",
    "dockerfile": "dockerfile",
    "cmakelists.txt": "cmake",
    "rakefile": "ruby",
    "gemfile": "ruby",
    "vagrantfile": "ruby",
    "podfile": "ruby",
    "brewfile": "ruby",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".profile": "bash",
    ".zshrc": "bash",
    "pkgbuild": "bash",
    "build.gradle": "groovy",
    "jenkinsfile": "groovy",
    "cargo.lock": "toml",
    "pipfile": "toml",
    ".gitignore": "gitignore",
}

_CASE_SENSITIVE_EXTENSIONS: dict[str, str] = {".R": "r"}

INTERPRETERS: dict[str, str] = {
    "python": "python",
    "pypy": "python",
    "sh": "bash",
    "bash": "bash",
    "dash": "bash",
    "ash": "bash",
    "ksh": "bash",
    "mksh": "bash",
    "zsh": "bash",
    "node": "javascript",
    "nodejs": "javascript",
    "ts-node": "typescript",
    "ruby": "ruby",
    "jruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "luajit": "lua",
    "rscript": "r",
    "julia": "julia",
    "elixir": "elixir",
    "runghc": "haskell",
    "runhaskell": "haskell",
    "ocaml": "ocaml",
    "scala": "scala",
    "swift": "swift",
    "dart": "dart",
    "pwsh": "powershell",
    "make": "make",
}
"""Interpreter names (lowercase, version stripped) a shebang may run, by language."""

_VERSION = re.compile(r"[\d.]*$")
_ENV_ARG_OPTIONS = frozenset({"-u", "--unset", "-C", "--chdir", "-P"})
_SHEBANG_LINE = 256


def language_for_shebang(first_line: str) -> str | None:
    """The language of the interpreter ``first_line`` names, if it is a shebang.

    ``/usr/bin/env`` is looked through: its options (``-S`` splitting included)
    and ``NAME=value`` assignments are skipped. A version suffix
    (``python3.11``, ``lua5.4``) is dropped.
    """
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:_SHEBANG_LINE].split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        program = ""
        rest = iter(words[1:])
        for word in rest:
            if word in _ENV_ARG_OPTIONS:
                next(rest, None)
            elif word.startswith("--split-string="):
                word = word.removeprefix("--split-string=")
                if word:
                    program = word
                    break
            elif word.startswith("-S") and len(word) > 2:
                program = word[2:]
                break
            elif word.startswith("-") or "=" in word:
                continue
            else:
                program = word
                break
        program = program.rsplit("/", 1)[-1]
    name = _VERSION.sub("", program.lower())
    return INTERPRETERS.get(name)


def _tagged_languages() -> frozenset[str]:
    """Languages with a ``<lang>-tags.scm`` shipped in the package."""
    names: set[str] = set()
    for entry in (files("rlm_mcp.index.parse") / "queries").iterdir():
        if entry.name.endswith("-tags.scm"):
            names.add(entry.name.removesuffix("-tags.scm"))
    return frozenset(names)


TAGGED_LANGUAGES: frozenset[str] = _tagged_languages()


def language_for_path(path: str, first_line: str | None = None) -> str | None:
    """The language of ``path`` by its name, else by the shebang in ``first_line``.

    ``first_line`` is the file's first line (without the newline); only a name
    that maps to no language lets it decide.
    """
    by_name = _language_for_name(path)
    if by_name is None and first_line:
        return language_for_shebang(first_line)
    return by_name


def _language_for_name(path: str) -> str | None:
    name = PurePosixPath(path.replace("\\", "/")).name
    lowered = name.lower()
    by_name = FILENAMES.get(lowered)
    if by_name is not None:
        return by_name
    if lowered.startswith("dockerfile."):
        return "dockerfile"
    dot = name.rfind(".")
    if dot <= 0:
        return None
    suffix = name[dot:]
    exact = _CASE_SENSITIVE_EXTENSIONS.get(suffix)
    if exact is not None:
        return exact
    return EXTENSIONS.get(suffix.lower())


def has_tags(language: str | None) -> bool:
    """Whether a tags query exists for ``language``."""
    return language in TAGGED_LANGUAGES
