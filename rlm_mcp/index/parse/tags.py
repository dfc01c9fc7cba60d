"""Extract definitions and references from source with tree-sitter tags queries.

Each language has a ``queries/<lang>-tags.scm`` file using the capture
convention of tree-sitter's ``tags.scm``: ``@name.definition.<kind>`` names a
definition whose whole node is ``@definition.<kind>``, and
``@name.reference.<kind>`` marks a use. Two extra captures let qualified
names follow the code's structure where the syntax does not nest:
``@name.scope`` on a ``@scope`` node (a Rust ``impl`` block, say) names a
container that is not itself a definition, and ``@name.receiver`` inside a
definition match (a Go method's receiver type) prefixes that definition's
qualified name. When several patterns capture the same name, the one written
first in the query file wins, so queries list specific patterns (a Go
``type_spec`` of a struct) before general ones (any ``type_spec``).

Everything structural is done by the compiled query in C; Python only sorts
the definitions once to nest them and reads a few bytes around each one for
its signature and doc comment, so a whole standard library is tagged in a
few seconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection
from functools import cache
from importlib.resources import files

from tree_sitter import Language, Node, Parser, Query, QueryCursor
from tree_sitter_language_pack import get_language, get_parser

from rlm_mcp.index.model import Definition, Reference, TagsResult

__all__ = ["extract_tags", "load_query", "query_languages"]

_SIGNATURE_LIMIT = 200
_HEADER_SCAN_BYTES = 2000
_DOC_SCAN_LINES = 40

_CONTAINER_KINDS = frozenset({"class", "struct", "interface", "trait", "enum", "impl", "object"})
_CALLABLE_KINDS = frozenset({"function", "method"})

_C_STYLE = (("//",), (("/*", "*/"),))
_HASH_STYLE = (("#",), ())
_COMMENT_STYLES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "python": _HASH_STYLE,
    "ruby": (("#",), (("=begin", "=end"),)),
    "bash": _HASH_STYLE,
    "elixir": _HASH_STYLE,
    "r": _HASH_STYLE,
    "julia": (("#",), (("#=", "=#"),)),
    "php": (("//", "#"), (("/*", "*/"),)),
    "lua": (("--",), (("--[[", "]]"),)),
    "haskell": (("--",), (("{-", "-}"),)),
    "ocaml": ((), (("(*", "*)"),)),
    "ocaml_interface": ((), (("(*", "*)"),)),
}
_DECORATION_PREFIXES = ("@", "#[", "#![")
_MARKER_CHARS = "/*!#-|'^ \t"
_XML_DOC_TAG = re.compile(r"</?(?:summary|remarks|returns|para|param|typeparam|c|code|see)\b[^>]*>")


@cache
def query_languages() -> frozenset[str]:
    """Languages that ship a tags query."""
    root = files("rlm_mcp.index.parse") / "queries"
    return frozenset(
        entry.name.removesuffix("-tags.scm")
        for entry in root.iterdir()
        if entry.name.endswith("-tags.scm")
    )


@cache
def load_query(language: str) -> Query | None:
    """The compiled tags query for ``language``, or None if there is none.

    Compiled once per process: compiling is the slowest step for a small
    file, and ``Query`` objects are read-only so threads can share them.
    """
    if language not in query_languages():
        return None
    lang: Language = get_language(language)  # type: ignore[arg-type]
    return Query(lang, query_text(language))


_INHERITS = "; inherits:"


def query_text(language: str) -> str:
    """The query source for ``language``, with ``; inherits: other`` first lines expanded.

    A grammar that extends another (TSX over TypeScript) lists the parent's
    patterns by reference instead of a copy; the file's own patterns come
    first, so they win where both capture the same name.
    """
    text = (files("rlm_mcp.index.parse") / "queries" / f"{language}-tags.scm").read_text("utf-8")
    first, _, rest = text.partition("\n")
    if not first.startswith(_INHERITS):
        return text
    parents = [p.strip() for p in first.removeprefix(_INHERITS).split(",") if p.strip()]
    return "\n".join([rest, *(query_text(p) for p in parents)])


_local = threading.local()


def _parser(language: str) -> Parser:
    """A parser for ``language`` private to this thread (parsers are not thread-safe)."""
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = {}
        _local.parsers = parsers
    parser = parsers.get(language)
    if parser is None:
        parser = get_parser(language)  # type: ignore[arg-type]
        parsers[language] = parser
    return parser


class _Def:
    __slots__ = ("end", "kind", "name", "name_start", "node", "receiver", "start", "visible")

    def __init__(
        self, node: Node, name: str, name_start: int, kind: str, receiver: str, visible: bool
    ) -> None:
        self.node = node
        self.start = node.start_byte
        self.end = node.end_byte
        self.name = name
        self.name_start = name_start
        self.kind = kind
        self.receiver = receiver
        self.visible = visible


def _text(node: Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


def extract_tags(source: bytes, path: str, language: str) -> TagsResult:
    """Definitions and references in ``source``; never raises.

    Languages without a query, and any failure inside tree-sitter, give an
    empty (or partial) result rather than an exception: one odd file must
    not stop a whole repository from loading.
    """
    result = TagsResult()
    try:
        _extract(source, path, language, result)
    except Exception:
        pass
    return result


def _extract(source: bytes, path: str, language: str, result: TagsResult) -> None:
    query = load_query(language)
    if query is None:
        return
    tree = _parser(language).parse(source)
    matches = QueryCursor(query).matches(tree.root_node)

    defs: dict[int, tuple[int, _Def]] = {}
    scopes: list[_Def] = []
    refs: list[tuple[Node, str]] = []
    for pattern, captures in matches:
        found = _match_definition(captures, refs)
        if found is None:
            continue
        if found.visible:
            earlier = defs.get(found.name_start)
            if earlier is None or earlier[0] > pattern:
                defs[found.name_start] = (pattern, found)
        else:
            scopes.append(found)

    if defs or scopes:
        _emit_definitions([d for _, d in defs.values()] + scopes, source, path, language, result)
    _emit_references(refs, defs.keys(), path, result)


def _match_definition(captures: dict[str, list[Node]], refs: list[tuple[Node, str]]) -> _Def | None:
    """The definition or scope one query match names (None when it names none); its
    references are appended to ``refs``."""
    name_node: Node | None = None
    def_node: Node | None = None
    kind = ""
    receiver = ""
    visible = True
    for cname, nodes in captures.items():
        if cname.startswith("name.definition."):
            name_node = nodes[0]
            kind = cname[16:]
        elif cname.startswith("definition."):
            def_node = nodes[0]
        elif cname.startswith("name.reference."):
            ref_kind = cname[15:]
            refs.extend((node, ref_kind) for node in nodes)
        elif cname == "name.scope":
            name_node = nodes[0]
            kind = "impl"
            visible = False
        elif cname == "scope":
            def_node = nodes[0]
        elif cname == "name.receiver":
            receiver = _text(nodes[0])
    if name_node is None:
        return None
    name = _text(name_node)
    if not name:
        return None
    return _Def(def_node or name_node, name, name_node.start_byte, kind, receiver, visible)


def _emit_references(
    refs: list[tuple[Node, str]], defined: Collection[int], path: str, result: TagsResult
) -> None:
    """One reference per name position, none where a definition names itself."""
    seen: set[int] = set()
    out = result.references
    for node, ref_kind in refs:
        start = node.start_byte
        if start in defined or start in seen:
            continue
        seen.add(start)
        name = _text(node)
        if name:
            out.append(Reference(name, path, node.start_point[0] + 1, ref_kind))


def _emit_definitions(
    defs: list[_Def], source: bytes, path: str, language: str, result: TagsResult
) -> None:
    defs.sort(key=lambda d: (d.start, -d.end, not d.visible))
    stack: list[_Def] = []
    style = _COMMENT_STYLES.get(language, _C_STYLE)
    out = result.definitions
    for d in defs:
        while stack and stack[-1].end <= d.start:
            stack.pop()
        if stack and stack[-1].end < d.end:
            # Overlapping but not nested (error recovery): treat as a sibling.
            while stack and stack[-1].end < d.end:
                stack.pop()
        parent = stack[-1] if stack else None
        stack.append(d)
        if not d.visible:
            continue
        kind = d.kind
        if kind in _CALLABLE_KINDS and not d.receiver:
            if parent is not None and parent.kind in _CONTAINER_KINDS:
                kind = "method"
            else:
                kind = "function"
        elif kind == "object":
            kind = "class"
        names = [s.name for s in stack]
        if d.receiver:
            names.insert(len(names) - 1, d.receiver)
        node = d.node
        start_row = node.start_point[0]
        end_row, end_col = node.end_point
        if end_col == 0 and end_row > start_row:
            end_row -= 1
        doc = _docstring(node) if language == "python" else ""
        if not doc:
            doc = _leading_comment(source, d.start, style)
        out.append(
            Definition(
                name=d.name,
                qualname=".".join(names),
                kind=kind,
                path=path,
                start_line=start_row + 1,
                end_line=end_row + 1,
                signature=_signature(source, node),
                doc=doc,
            )
        )


def _signature(source: bytes, node: Node) -> str:
    """The definition's header: up to its body if it has one, else its first line."""
    start = node.start_byte
    start = max(
        source.rfind(b"\n", max(0, start - _SIGNATURE_LIMIT), start) + 1, start - _SIGNATURE_LIMIT
    )
    body = node.child_by_field_name("body")
    if body is not None and start < body.start_byte <= start + _HEADER_SCAN_BYTES:
        raw = source[start : body.start_byte]
    else:
        stop = source.find(b"\n", start, start + _HEADER_SCAN_BYTES)
        raw = source[start : stop if stop >= 0 else min(node.end_byte, start + _HEADER_SCAN_BYTES)]
    lines = raw.decode("utf-8", "replace").splitlines()
    depth = 0
    for count, line in enumerate(lines, 1):
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        if depth <= 0:
            lines = lines[:count]
            break
    text = " ".join(" ".join(lines).split()).rstrip(" {")
    if len(text) > _SIGNATURE_LIMIT:
        text = text[: _SIGNATURE_LIMIT - 1] + "…"
    return text


def _docstring(node: Node) -> str:
    """First line of a Python docstring: the body's leading string statement."""
    body = node.child_by_field_name("body")
    if body is None or body.named_child_count == 0:
        return ""
    string = body.named_children[0]
    if string.type == "expression_statement" and string.named_child_count:
        string = string.named_children[0]
    if string.type != "string":
        return ""
    for child in string.named_children:
        if child.type == "string_content":
            return _first_line(_text(child))
    return ""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:_SIGNATURE_LIMIT]
    return ""


def _leading_comment(
    source: bytes,
    start: int,
    style: tuple[tuple[str, ...], tuple[tuple[str, str], ...]],
) -> str:
    """First line of the comment block directly above ``start`` ("" if none).

    Works on text rather than syntax nodes because comments are extras that
    grammars attach to different parents; decorators and attributes between
    the comment and the definition are skipped.
    """
    line_prefixes, blocks = style
    line_start = source.rfind(b"\n", 0, start) + 1
    if any(c in b"{};()=" for c in source[max(line_start, start - 400) : start]):
        return ""
    collected: list[str] = []
    end = line_start - 1
    in_block: str | None = None
    for _ in range(_DOC_SCAN_LINES):
        if end < 0:
            break
        begin = source.rfind(b"\n", 0, end) + 1
        line = source[begin:end].decode("utf-8", "replace").strip()
        end = begin - 1
        if in_block is not None:
            collected.append(line)
            if in_block in line:
                in_block = None
            continue
        if not line:
            break
        if (
            line_prefixes
            and line.startswith(line_prefixes)
            and not line.startswith(_DECORATION_PREFIXES[1:])
        ):
            collected.append(line)
            continue
        pair = next(((o, c) for o, c in blocks if line.endswith(c)), None)
        if pair is not None:
            collected.append(line)
            if pair[0] not in line:
                in_block = pair[0]
            continue
        if not collected and line.startswith(_DECORATION_PREFIXES):
            continue
        break
    for line in reversed(collected):
        for opener, ender in blocks:
            line = line.replace(opener, " ").replace(ender, " ")
        if "<" in line:
            line = _XML_DOC_TAG.sub(" ", line)
        cleaned = line.strip(_MARKER_CHARS)
        if cleaned:
            return cleaned[:_SIGNATURE_LIMIT]
    return ""
