"""The rules that keep the layers pointing down, checked on the source itself."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from rlm_mcp.engine.replapi import LLM_FUNCTIONS, REPL_FUNCTIONS, RESERVED, prompt_function_list

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rlm_mcp"
STORE_PACKAGE = "rlm_mcp.index.store"
MAX_MODULE_LINES = 600
MAX_FLAT_INDEX_MODULES = 10
_SQL = re.compile(
    r"\b(SELECT\s+[\w*,().\s]+?\s+FROM\s|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|VIRTUAL)|"
    r"UPDATE\s+\w+\s+SET|DROP\s+(TABLE|INDEX)|PRAGMA\s)",
    re.IGNORECASE,
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every rlm_mcp module ``path`` imports, anywhere in the file (TYPE_CHECKING included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_inside_the_package_type_checking_imports_included() -> None:
    graph = _graph()
    # The package root re-exports the public API lazily; it is nobody's dependency.
    graph = {k: {d for d in v if d != "rlm_mcp"} for k, v in graph.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_would_catch_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_layers_never_import_upper_ones() -> None:
    graph = _graph()
    upper = {
        "rlm_mcp.server",
        "rlm_mcp.service",
        "rlm_mcp.cli",
        "rlm_mcp.api",
        "rlm_mcp.http",
        "rlm_mcp.openai",
        "rlm_mcp.openai.app",
        "rlm_mcp.openai.request",
        "rlm_mcp.openai.response",
        "rlm_mcp.sessions",
    }
    for name, deps in graph.items():
        if name.startswith(
            ("rlm_mcp.index", "rlm_mcp.engine", "rlm_mcp.backends", "rlm_mcp.testing")
        ):
            assert not deps & upper, f"{name} imports {deps & upper}"
        if name.startswith("rlm_mcp.openai"):
            # The /v1 routes sit beside the MCP server, on the service: neither imports the other.
            assert "rlm_mcp.server" not in deps, name
        if name == "rlm_mcp.server":
            assert not any(d.startswith("rlm_mcp.openai") for d in deps)
        if name.startswith("rlm_mcp.testing"):
            # The test kit fakes models: it stands on the backends' value types only.
            assert not any(d.startswith(("rlm_mcp.engine", "rlm_mcp.index")) for d in deps), name
        if name.startswith("rlm_mcp.index"):
            assert not any(d.startswith("rlm_mcp.engine") for d in deps), name
    for path in (ROOT / "sandbox").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("rlm_mcp") for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("rlm_mcp"), path


def test_sql_lives_only_in_the_storage_implementation() -> None:
    offenders = []
    for name, path in _modules().items():
        if name == STORE_PACKAGE or name.startswith(STORE_PACKAGE + "."):
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SQL.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert offenders == []


def test_no_module_in_the_package_or_the_sandbox_is_over_600_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for folder in (PACKAGE, ROOT / "sandbox")
        for path in folder.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_the_index_package_keeps_at_most_ten_modules_flat_its_rooms_hold_the_rest() -> None:
    flat = sorted(p.name for p in (PACKAGE / "index").glob("*.py"))
    assert len(flat) <= MAX_FLAT_INDEX_MODULES, flat


def test_no_module_name_differs_from_a_siblings_by_one_letter() -> None:
    close = []
    for folder in [PACKAGE, *(d for d in PACKAGE.rglob("*") if d.is_dir())]:
        names = sorted(
            p.stem if p.is_file() else p.name
            for p in folder.iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"
        )
        for i, a in enumerate(names):
            close += [f"{folder.name}/{a} ~ {b}" for b in names[i + 1 :] if _one_letter_apart(a, b)]
    assert close == []


def _one_letter_apart(a: str, b: str) -> bool:
    """One insertion, deletion or substitution turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def test_the_one_letter_check_would_catch_store_and_stores() -> None:
    assert _one_letter_apart("store", "stores")
    assert _one_letter_apart("storage", "storags")
    assert not _one_letter_apart("store", "storage")


def test_the_server_uses_the_index_only_through_its_public_face() -> None:
    graph = _graph()
    allowed = {"rlm_mcp.index", "rlm_mcp.index.model"}
    for name in ("rlm_mcp.server", "rlm_mcp.schemas"):
        internals = {d for d in graph.get(name, set()) if d.startswith("rlm_mcp.index.")}
        assert internals <= allowed, f"{name} imports {internals - allowed}"


def test_the_sql_check_recognises_sql() -> None:
    assert _SQL.search('conn.execute("SELECT path FROM files")')
    assert _SQL.search("DELETE FROM defs WHERE path=?")
    assert not _SQL.search("select the best candidates")


def test_repl_functions_table_drives_the_prompt_the_reserved_names_and_the_readme() -> None:
    listing = prompt_function_list(1000)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for f in REPL_FUNCTIONS:
        assert f"- {f.name}{f.signature}:" in listing
        assert f.name.split(".", 1)[0] in RESERVED
        assert f"`{f.name}" in readme, f"README does not list {f.name}"
    assert set(LLM_FUNCTIONS) <= {f.name for f in REPL_FUNCTIONS}


def test_every_repo_function_in_the_table_has_a_host_implementation(tmp_path: Path) -> None:
    from rlm_mcp.config import IndexSettings
    from rlm_mcp.engine.replapi import repo_functions
    from rlm_mcp.engine.result import EvidenceLog
    from rlm_mcp.index import load

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    with load(tmp_path / "src", IndexSettings(cache_dir=tmp_path / "cache", watch=False)) as repo:
        host = repo_functions(repo, EvidenceLog())
    assert set(host) == {f.name for f in REPL_FUNCTIONS if f.name.startswith("repo.") and f.host}


def test_the_cli_help_imports_no_model_index_or_sandbox_code() -> None:
    code = (
        "import sys, rlm_mcp.cli\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('openai', 'watchdog', 'sandbox', 'tree_sitter', 'mcp') "
        "or m.startswith(('rlm_mcp.service', 'rlm_mcp.engine', 'rlm_mcp.index'))]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_search_from_the_cli_does_not_import_the_model_client(tmp_path: Path) -> None:
    # openai takes half a second to import; `rlm-mcp search` and the index commands never call
    # a model (1.0 s -> 0.3 s per command).
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    code = (
        "import sys\n"
        "from rlm_mcp.cli import main\n"
        "code = main(['search', sys.argv[1], 'return'], env={'RLM_CACHE_DIR': sys.argv[2]})\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'httpx'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "src"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
