"""Go and Rust facts the index does not keep: package docs, imports and resolved call sites.

Definitions of Go and Rust code come from the project's tree-sitter index, as
for C, JavaScript and TypeScript (:mod:`benchmarks.eval.understanding`). This
module reads the rest with the same grammars (``tree_sitter_language_pack``,
bundled; nothing is downloaded):

* **Docs.** A Go file's doc is the comment directly above its ``package``
  clause (the package doc); a Rust file's is its leading ``//!`` lines. A Go
  definition's doc is the ``//`` lines directly above it (``//go:`` and other
  directives left out), a Rust one's its ``///`` lines, attributes between them
  and the item skipped.
* **Imports.** A Go file reaches the other files of its package and the files
  of the repository's packages it imports (import paths resolved through each
  module's ``go.mod``). A Rust file reaches the modules it declares (``mod x;``)
  and the crate modules its ``use`` declarations name.
* **Calls.** Each call site with its shape: a bare ``f()``, a path ``p::f()`` /
  ``pkg.F()``, or a method ``x.f()``, with the enclosing method's receiver
  (Go) or ``impl`` type and module (Rust). :meth:`GoRust.call_sites` resolves
  the sites of one definition and returns None when some site cannot be told
  apart from a call of a same-named method of another type.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from benchmarks.eval.sourcetext import (
    comment_above,
    identifier_words,
    is_license,
    strip_comment_markers,
)

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = ["CallSite", "GoRust", "doc_comment_above", "name_words_of", "rust_module_doc"]

_GO_DIRECTIVE = re.compile(r"^//(?:[a-z0-9]+:\S|nolint\b|export\s|line\s)")
_MODULE = re.compile(r"^\s*module\s+(\S+)", re.MULTILINE)
_MAX_ATTRIBUTE_LINES = 12
_RUST_TYPES = frozenset({"struct_item", "enum_item", "union_item", "trait_item", "type_item"})


# -- docs -----------------------------------------------------------------------------------


def _rust_doc_line(line: str) -> str:
    """A ``///`` or ``//!`` line's text: only the marker and one space go (``**bold**`` stays)."""
    s = line.strip()
    for marker in ("///", "//!"):
        if s.startswith(marker):
            s = s[len(marker) :]
            break
    return s[1:].rstrip() if s.startswith(" ") else s.rstrip()


_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]:\s")


def _markdown_prose(lines: Sequence[str]) -> list[str]:
    """Rust doc lines with what is not prose blanked: fenced code, ``# Headings``,
    badge lines (``[![...]``), link definitions (``[name]: url``) and HTML tags."""
    out: list[str] = []
    fenced = False
    for line in lines:
        s = line.strip()
        if s.startswith(("```", "~~~")):
            fenced = not fenced
            out.append("")
        elif fenced or s.startswith(("#", "[![", "<")) or _LINK_DEFINITION.match(s):
            out.append("")
        else:
            out.append(line)
    return out


def _attribute_start(lines: Sequence[str], i: int) -> int | None:
    """The first line of a Rust attribute ending on line ``i`` (0-based), or None."""
    s = lines[i].strip()
    if s.startswith(("#[", "#![")):
        return i
    if not s.endswith("]") or s.startswith("//"):
        return None
    for j in range(i - 1, max(-1, i - _MAX_ATTRIBUTE_LINES), -1):
        t = lines[j].strip()
        if t.startswith("#["):
            return j
        if not t or t.startswith("//"):
            return None
    return None


def doc_comment_above(
    lines: Sequence[str], start_line: int, language: str
) -> tuple[list[str], int]:
    """A Go or Rust definition's doc comment above 1-based ``start_line``, markers stripped.

    Go: the ``//`` lines directly above (directives such as ``//go:generate``
    left out), or a ``/* */`` block. Rust: the ``///`` lines (or a ``/** */``
    block) directly above, attributes (``#[derive(...)]``, over several lines
    too) between them and the item skipped; plain ``//`` comments are not docs.
    Returns the text lines and the block's first line (``start_line`` when none).
    """
    if language == "go":
        text, first = comment_above(lines, start_line)
        if first == start_line:
            return [], start_line
        raw = [lines[k].strip() for k in range(first - 1, start_line - 1)]
        kept = [t for t, r in zip(text, raw, strict=False) if not _GO_DIRECTIVE.match(r)]
        return kept, first
    i = start_line - 2
    while i >= 0:
        at = _attribute_start(lines, i)
        if at is None:
            break
        i = at - 1
    collected: list[str] = []
    first = start_line
    if i >= 0 and lines[i].strip().endswith("*/"):
        j = i
        while j >= 0 and "/**" not in lines[j]:
            j -= 1
        if j < 0 or not lines[j].strip().startswith("/**"):
            return [], start_line
        return _markdown_prose([strip_comment_markers(s) for s in lines[j : i + 1]]), j + 1
    while i >= 0:
        s = lines[i].strip()
        if not s.startswith("///") or s.startswith("////"):
            break
        collected.append(s)
        first = i + 1
        i -= 1
    return _markdown_prose([_rust_doc_line(s) for s in reversed(collected)]), first


def rust_module_doc(lines: Sequence[str]) -> list[str]:
    """A Rust file's inner doc: its leading ``//!`` lines (or ``/*! */`` block), markers stripped.

    Blank lines, plain comments (a licence) and ``#![...]`` attributes may come first.
    """
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        s = lines[i].strip()
        if s.startswith("//!"):
            out.append(_rust_doc_line(s))
        elif out:
            break
        elif s.startswith("/*!"):
            while i < n:
                out.append(strip_comment_markers(lines[i]))
                if lines[i].rstrip().endswith("*/"):
                    break
                i += 1
            break
        elif not (not s or s.startswith(("//", "#!["))):
            break
        i += 1
    return _markdown_prose(out)


def _go_package_doc(package: Node) -> list[str]:
    """The comment directly above a Go ``package`` clause (tree-sitter's comment nodes, so a
    ``/* ... */`` doc that mentions ``"/static/*"`` is read whole), markers stripped."""
    blocks: list[Node] = []
    below = package.start_point[0]
    prev = package.prev_named_sibling
    while prev is not None and prev.type == "comment" and prev.end_point[0] + 1 >= below:
        blocks.append(prev)
        below = prev.start_point[0]
        prev = prev.prev_named_sibling
    out: list[str] = []
    for node in reversed(blocks):
        text = _text(node)
        if text.startswith("//"):
            if not _GO_DIRECTIVE.match(text):
                out.append(text[2:].removeprefix(" ").rstrip())
        else:
            body = text.removeprefix("/*").removesuffix("*/")
            out += [line.rstrip() for line in body.splitlines()]
    return [] if is_license(out) else out


# -- parsing ----------------------------------------------------------------------------------


@cache
def _parser(language: str) -> Parser:
    from tree_sitter_language_pack import get_parser

    return get_parser(language)  # type: ignore[arg-type]


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _walk(node: Node) -> Iterable[Node]:
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(cur.named_children))


@dataclass(frozen=True, slots=True)
class CallSite:
    """One call: ``form`` is ``bare`` (``f()``), ``path`` (``p::f()``, ``pkg.F()``) or
    ``method`` (``x.f()``); ``qualifier`` the path's segments or the receiver
    expression; ``receiver``/``owner`` the enclosing Go method's receiver name and
    type, or the Rust ``impl`` type; ``module`` the Rust module path at the call."""

    path: str
    line: int
    name: str
    form: str
    qualifier: tuple[str, ...] = ()
    receiver: str = ""
    owner: str = ""
    module: tuple[str, ...] = ()
    in_test: bool = False


@dataclass(slots=True)
class _GoFile:
    path: str
    package: str
    imports: list[tuple[str, str]]  # (alias as written, or "", import path)
    doc: list[str]


@dataclass(slots=True)
class _RustFile:
    path: str
    crate: str
    module: tuple[str, ...]
    doc: list[str]
    declared: list[tuple[str, ...]] = field(default_factory=list)  # `mod x;` modules
    # (module, local name) -> full use path, and module -> glob paths
    scope: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = field(default_factory=dict)
    globs: dict[tuple[str, ...], list[tuple[str, ...]]] = field(default_factory=dict)
    uses: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    items: dict[int, tuple[tuple[str, ...], str]] = field(default_factory=dict)  # fn line
    types: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (name, module)


def _go_type_name(node: Node | None) -> str:
    if node is None:
        return ""
    if node.type == "type_identifier":
        return _text(node)
    for child in _walk(node):
        if child.type == "type_identifier":
            return _text(child)
    return ""


def _go_receiver(method: Node) -> tuple[str, str]:
    params = method.child_by_field_name("receiver")
    if params is None:
        return "", ""
    for p in params.named_children:
        if p.type == "parameter_declaration":
            return _text(p.child_by_field_name("name")), _go_type_name(
                p.child_by_field_name("type")
            )
    return "", ""


def _parse_go(path: str, text: str) -> tuple[_GoFile, list[CallSite]]:
    tree = _parser("go").parse(text.encode("utf-8"))
    package = ""
    doc: list[str] = []
    imports: list[tuple[str, str]] = []
    sites: list[CallSite] = []
    for node in _walk(tree.root_node):
        t = node.type
        if t == "package_clause" and not package:
            package = next((_text(c) for c in node.named_children), "")
            doc = _go_package_doc(node)
        elif t == "import_spec":
            ipath = _text(node.child_by_field_name("path")).strip('"`')
            alias = _text(node.child_by_field_name("name"))
            imports.append((alias, ipath))
        elif t == "call_expression":
            fn = node.child_by_field_name("function")
            if fn is None:
                continue
            line = node.start_point[0] + 1
            receiver, owner = "", ""
            up = node.parent
            while up is not None and up.type != "method_declaration":
                up = up.parent
            if up is not None:
                receiver, owner = _go_receiver(up)
            if fn.type == "identifier":
                sites.append(CallSite(path, line, _text(fn), "bare", (), receiver, owner))
            elif fn.type == "selector_expression":
                operand = fn.child_by_field_name("operand")
                name = _text(fn.child_by_field_name("field"))
                qual = (
                    _text(operand) if operand is not None and operand.type == "identifier" else ""
                )
                sites.append(CallSite(path, line, name, "select", (qual,), receiver, owner))
    return _GoFile(path, package, imports, doc), sites


def _rust_segments(node: Node | None) -> tuple[str, ...]:
    """``a::b::c`` -> (a, b, c); generic arguments (``Vec::<u8>``) dropped."""
    if node is None:
        return ()
    if node.type == "scoped_identifier" or node.type == "scoped_type_identifier":
        head = _rust_segments(node.child_by_field_name("path"))
        return (*head, _text(node.child_by_field_name("name")))
    if node.type == "generic_type":
        return _rust_segments(node.child_by_field_name("type"))
    return (_text(node),)


def _use_paths(node: Node, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """(full path, local name) per name a ``use`` tree brings in; ``*`` for a glob."""
    t = node.type
    if t in ("identifier", "crate", "self", "super", "scoped_identifier", "metavariable"):
        segs = prefix + _rust_segments(node)
        return [(segs, segs[-1])]
    if t == "use_as_clause":
        segs = prefix + _rust_segments(node.child_by_field_name("path"))
        return [(segs, _text(node.child_by_field_name("alias")))]
    if t == "use_wildcard":
        inner = node.named_children[0] if node.named_children else None
        return [(prefix + _rust_segments(inner) + ("*",), "*")]
    if t == "scoped_use_list":
        base = prefix + _rust_segments(node.child_by_field_name("path"))
        lst = node.child_by_field_name("list")
        return _use_paths(lst, base) if lst is not None else []
    if t == "use_list":
        out = []
        for child in node.named_children:
            out += _use_paths(child, prefix)
        return out
    return []


def _attributes_before(node: Node) -> str:
    out = []
    prev = node.prev_named_sibling
    while prev is not None and prev.type in ("attribute_item", "line_comment", "block_comment"):
        if prev.type == "attribute_item":
            out.append(_text(prev))
        prev = prev.prev_named_sibling
    return " ".join(out)


def _is_test_item(node: Node) -> bool:
    attrs = _attributes_before(node).replace(" ", "")
    return "cfg(test)" in attrs or "#[test]" in attrs


def _rust_module_of(path: str, crate: str) -> tuple[str, ...]:
    rel = path[len(crate) + 1 :] if crate else path
    parts = rel[:-3].split("/")
    if parts[-1] in ("lib", "main") and len(parts) == 1:
        return ()
    if parts[-1] == "mod":
        return tuple(parts[:-1])
    return tuple(parts)


def _rust_context(node: Node, base: tuple[str, ...]) -> tuple[tuple[str, ...], str, bool]:
    """The module path at ``node``, the nearest ``impl``/``trait`` type, and whether it is
    inside a ``#[cfg(test)]`` module or a ``#[test]`` function."""
    mods: list[str] = []
    owner = ""
    in_test = False
    up = node.parent
    while up is not None:
        if up.type == "mod_item":
            mods.append(_text(up.child_by_field_name("name")))
            in_test = in_test or _is_test_item(up)
        elif up.type in ("impl_item", "trait_item") and not owner:
            field_name = "type" if up.type == "impl_item" else "name"
            owner = _rust_segments(up.child_by_field_name(field_name))[-1]
        elif up.type == "function_item":
            in_test = in_test or _is_test_item(up)
        up = up.parent
    return base + tuple(reversed(mods)), owner, in_test


def _add_uses(facts: _RustFile, module: tuple[str, ...], arg: Node) -> None:
    for segs, local in _use_paths(arg, ()):
        facts.uses.append((module, segs))
        if local == "*":
            facts.globs.setdefault(module, []).append(segs[:-1])
        elif local != "self":
            facts.scope[(module, local)] = segs
        else:  # `use a::b::{self}` names module b
            facts.scope[(module, segs[-2] if len(segs) > 1 else local)] = segs[:-1]


def _rust_call(node: Node, path: str, base: tuple[str, ...]) -> CallSite | None:
    fn = node.child_by_field_name("function")
    if fn is not None and fn.type == "generic_function":
        fn = fn.child_by_field_name("function")
    if fn is None:
        return None
    module, owner, in_test = _rust_context(node, base)
    line = node.start_point[0] + 1
    if fn.type == "identifier":
        return CallSite(path, line, _text(fn), "bare", (), "", owner, module, in_test)
    if fn.type == "scoped_identifier":
        segs = _rust_segments(fn)
        return CallSite(path, line, segs[-1], "path", segs[:-1], "", owner, module, in_test)
    if fn.type == "field_expression":
        value = fn.child_by_field_name("value")
        name = _text(fn.child_by_field_name("field"))
        qual = (_text(value),) if value is not None and value.type == "self" else ("",)
        return CallSite(path, line, name, "method", qual, "", owner, module, in_test)
    return None


def _parse_rust(
    path: str, text: str, crate: str
) -> tuple[_RustFile, list[CallSite], set[tuple[str, ...]]]:
    """A Rust file's facts, its call sites and the inline modules it declares."""
    tree = _parser("rust").parse(text.encode("utf-8"))
    base = _rust_module_of(path, crate)
    facts = _RustFile(path, crate, base, rust_module_doc(text.splitlines()))
    sites: list[CallSite] = []
    inline: set[tuple[str, ...]] = set()
    for node in _walk(tree.root_node):
        t = node.type
        if t == "call_expression":
            site = _rust_call(node, path, base)
            if site is not None:
                sites.append(site)
            continue
        if t not in ("mod_item", "use_declaration", "function_item") and t not in _RUST_TYPES:
            continue
        module, owner, _ = _rust_context(node, base)
        if t == "mod_item":
            name = _text(node.child_by_field_name("name"))
            if node.child_by_field_name("body") is None:
                facts.declared.append((*module, name))
            else:
                inline.add((*module, name))
        elif t == "use_declaration":
            arg = node.child_by_field_name("argument")
            if arg is not None:
                _add_uses(facts, module, arg)
        elif t == "function_item":
            facts.items[node.start_point[0] + 1] = (module, owner)
        else:
            facts.types.append((_text(node.child_by_field_name("name")), module))
    return facts, sites, inline


# -- the repository -------------------------------------------------------------------------


class GoRust:
    """Go and Rust files of one repository: docs, imports and call sites.

    ``texts`` maps repository paths to their text; ``.go`` and ``.rs`` files are
    read, and ``go.mod`` files give the Go modules' import paths.
    """

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.go: dict[str, _GoFile] = {}
        self.rust: dict[str, _RustFile] = {}
        self.sites: dict[str, list[CallSite]] = defaultdict(list)  # name -> sites
        self.modules: dict[str, str] = {}  # Go module import path -> its directory
        self.dirs: dict[str, list[str]] = defaultdict(list)  # Go directory -> its files
        for p, text in sorted(texts.items()):
            if posixpath.basename(p) == "go.mod":
                m = _MODULE.search(text)
                if m:
                    self.modules[m.group(1)] = posixpath.dirname(p)
        crates = sorted(
            (posixpath.dirname(p) for p in texts if re.search(r"(^|/)src/(lib|main)\.rs$", p)),
            key=len,
            reverse=True,
        )
        self.crate_modules: dict[str, dict[tuple[str, ...], str]] = defaultdict(dict)
        # crate -> type name -> modules defining a type of that name
        self.types: dict[str, dict[str, set[tuple[str, ...]]]] = defaultdict(dict)
        self.inline: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        for p, text in sorted(texts.items()):
            if p.endswith(".go"):
                gofile, sites = _parse_go(p, text)
                self.go[p] = gofile
                self.dirs[posixpath.dirname(p)].append(p)
            elif p.endswith(".rs"):
                crate = next((c for c in crates if p.startswith(c + "/")), "")
                rfile, sites, inline = _parse_rust(p, text, crate)
                self.rust[p] = rfile
                self.crate_modules[crate][rfile.module] = p
                self.inline[crate] |= inline
                for tname, tmodule in rfile.types:
                    self.types[crate].setdefault(tname, set()).add(tmodule)
            else:
                continue
            for site in sites:
                self.sites[site.name].append(site)
        self.aliases = {p: self._aliases(g) for p, g in self.go.items()}

    # -- docs and imports

    def file_doc(self, path: str) -> list[str]:
        if path in self.go:
            return self.go[path].doc
        if path in self.rust:
            return self.rust[path].doc
        return []

    def package_name(self, path: str) -> str:
        return self.go[path].package if path in self.go else ""

    def _go_dir(self, import_path: str) -> str | None:
        for module, where in sorted(self.modules.items(), key=lambda kv: -len(kv[0])):
            if import_path == module:
                return where
            if import_path.startswith(module + "/"):
                return posixpath.join(where, import_path[len(module) + 1 :])
        return None

    def _aliases(self, g: _GoFile) -> dict[str, str]:
        """The names a Go file calls its imports by: as written, else the package's own name
        (read from the repository's files), else the path's last element without a
        major-version suffix (``.../go-toml/v2`` is ``toml``, ``gopkg.in/yaml.v3`` is ``yaml``)."""
        out: dict[str, str] = {}
        for alias, ipath in g.imports:
            if not alias:
                where = self._go_dir(ipath)
                files = self.dirs.get(where, []) if where is not None else []
                alias = next((self.go[f].package for f in files if self.go[f].package), "")
            if not alias:
                parts = ipath.split("/")
                last = (
                    parts[-2] if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1 else parts[-1]
                )
                alias = re.sub(r"\.v\d+$", "", last).removeprefix("go-").replace("-", "")
            out[alias] = ipath
        return out

    def imports(self, path: str) -> set[str]:
        """Repository files that ``path`` reaches (see the module docstring)."""
        out: set[str] = set()
        if path in self.go:
            here = posixpath.dirname(path)
            out.update(self.dirs[here])
            for _, ipath in self.go[path].imports:
                where = self._go_dir(ipath)
                if where is not None:
                    out.update(self.dirs.get(where, []))
        elif path in self.rust:
            f = self.rust[path]
            files = self.crate_modules[f.crate]
            for module in f.declared:
                if module in files:
                    out.add(files[module])
            for module, segs in f.uses:
                target = self._resolve(f, module, segs)
                while target and target not in files:
                    target = target[:-1]
                if target is not None and target in files:
                    out.add(files[target])
        out.discard(path)
        return out

    # -- Rust paths

    def _known(self, crate: str, module: tuple[str, ...]) -> bool:
        return module in self.crate_modules[crate] or module in self.inline[crate]

    def _resolve(
        self, f: _RustFile, module: tuple[str, ...], segs: Sequence[str], depth: int = 0
    ) -> tuple[str, ...] | None:
        """The crate path ``segs`` names from ``module`` (None when outside the crate)."""
        if not segs:
            return module
        if depth > 8:
            return None
        head, rest = segs[0], tuple(segs[1:])
        if head == "crate":
            base: tuple[str, ...] = ()
        elif head == "self":
            base = module
        elif head == "super":
            return self._resolve(f, module[:-1], rest, depth + 1) if module else None
        elif (module, head) in f.scope and f.scope[(module, head)] != tuple(segs[:1]):
            full = f.scope[(module, head)]
            return self._resolve(f, module, (*full, *rest), depth + 1)
        elif self._known(f.crate, (*module, head)):
            base = (*module, head)
        elif self._known(f.crate, (head,)):
            base = (head,)
        else:
            return None
        for seg in rest:
            base = base[:-1] if seg == "super" else (*base, seg)
        return base

    def _names_type(
        self, g: _RustFile, module: tuple[str, ...], qual: Sequence[str], name: str
    ) -> bool:
        """Whether the path ``qual`` (``T``, ``a::b::T``) at ``module`` of ``g`` names a
        type ``name`` of ``g``'s crate (not ``io::Error`` for the crate's ``Error``)."""
        where = self.types[g.crate].get(name, set())
        if not qual or qual[-1] != name or not where:
            return False
        if len(qual) > 1:
            return self._resolve(g, module, qual[:-1]) in where
        if module in where:
            return True
        if (module, name) in g.scope:
            return self._resolve(g, module, g.scope[(module, name)][:-1]) in where
        return any(self._resolve(g, module, glob) in where for glob in g.globs.get(module, []))

    # -- call sites

    def call_sites(self, path: str, kind: str, qualname: str, line: int) -> list[CallSite] | None:
        """The call sites of the function or method defined at ``path:line``.

        None when some call cannot be told apart from a call of another type's
        same-named method: every ``x.m()`` whose ``x`` is not the enclosing Go
        method's receiver of the same type, or Rust ``self`` inside an ``impl`` of
        it. Rust calls inside ``#[cfg(test)]`` modules and ``#[test]`` functions
        are left out.
        """
        name = qualname.rsplit(".", 1)[-1]
        sites = self.sites.get(name, [])
        if path in self.go:
            return self._go_sites(path, kind, qualname, name, sites)
        if path in self.rust:
            return self._rust_sites(path, kind, line, name, sites)
        return []

    def _go_sites(
        self, path: str, kind: str, qualname: str, name: str, sites: Sequence[CallSite]
    ) -> list[CallSite] | None:
        here = posixpath.dirname(path)
        out: list[CallSite] = []
        if kind == "function":
            for s in sites:
                g = self.go.get(s.path)
                if g is None:
                    continue
                if s.form == "bare" and (
                    posixpath.dirname(s.path) == here
                    or any(a == "." and self._go_dir(ip) == here for a, ip in g.imports)
                ):
                    out.append(s)
                elif s.form == "select":
                    ipath = self.aliases[s.path].get(s.qualifier[0])
                    if ipath is not None and self._go_dir(ipath) == here:
                        out.append(s)
            return out
        owner = qualname.rsplit(".", 2)[-2] if "." in qualname else ""
        for s in sites:
            g = self.go.get(s.path)
            if g is None or s.form != "select":
                continue
            if s.qualifier[0] and s.qualifier[0] in self.aliases[s.path]:
                continue  # another package's function
            if s.owner == owner and s.qualifier[0] == s.receiver and s.receiver:
                out.append(s)
            else:
                return None
        return out

    def _rust_sites(
        self, path: str, kind: str, line: int, name: str, sites: Sequence[CallSite]
    ) -> list[CallSite] | None:
        f = self.rust[path]
        module, owner = f.items.get(line, (f.module, ""))
        if kind == "function" and not owner:
            return [s for s in sites if self._calls_function(f, module, name, s)]
        if not owner:
            return None
        out: list[CallSite] = []
        for s in sites:
            g = self.rust.get(s.path)
            if g is None or s.in_test or s.form == "bare":
                continue
            if s.form == "method":
                if s.qualifier != ("self",) or s.owner != owner:
                    return None  # x.m(): maybe another type's m
                out.append(s)
            elif (s.qualifier == ("Self",) and s.owner == owner) or (
                g.crate == f.crate and self._names_type(g, s.module, s.qualifier, owner)
            ):
                out.append(s)
        return out

    def _calls_function(
        self, f: _RustFile, module: tuple[str, ...], name: str, s: CallSite
    ) -> bool:
        """Whether site ``s`` calls the free function ``name`` of ``module`` in ``f``'s crate."""
        g = self.rust.get(s.path)
        if g is None or g.crate != f.crate or s.in_test:
            return False
        if s.form == "path":
            return self._resolve(g, s.module, s.qualifier) == module
        if s.form != "bare":
            return False
        if s.module == module:
            return True
        if (s.module, name) in g.scope:
            return self._resolve(g, s.module, g.scope[(s.module, name)][:-1]) == module
        return any(self._resolve(g, s.module, glob) == module for glob in g.globs.get(s.module, []))


def name_words_of(path: str, package: str) -> list[str]:
    """The words a file's doc names itself with: a Go package's name, else the file's stem."""
    if package:  # "Package toml ...", and a command's "Package tomll ..." over `package main`
        dirname = PurePosixPath(path).parent.name
        return ["package", *identifier_words(package), *identifier_words(dirname)]
    where = PurePosixPath(path)
    stem = where.stem
    if stem in ("mod", "lib", "main"):
        # a module directory's name; for a crate root, the crate's directory above src/
        stem = where.parent.name
        if stem == "src":
            stem = where.parent.parent.name
    return identifier_words(stem)
