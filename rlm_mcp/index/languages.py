"""Map file paths to tree-sitter language names.

The names are those of ``tree_sitter_language_pack`` so the result can be
handed straight to ``get_language``/``get_parser``. Languages without a tags
query are still recognised, so the load report can count them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import PurePosixPath

__all__ = [
    "EXTENSIONS",
    "FILENAMES",
    "TAGGED_LANGUAGES",
    "has_tags",
    "language_for_path",
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


def _tagged_languages() -> frozenset[str]:
    """Languages with a ``<lang>-tags.scm`` shipped in the package."""
    names: set[str] = set()
    for entry in (files("rlm_mcp.index") / "queries").iterdir():
        if entry.name.endswith("-tags.scm"):
            names.add(entry.name.removesuffix("-tags.scm"))
    return frozenset(names)


TAGGED_LANGUAGES: frozenset[str] = _tagged_languages()


def language_for_path(path: str) -> str | None:
    """The language of ``path`` by its name alone (no content sniffing)."""
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
