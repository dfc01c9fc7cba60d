"""Question kinds that need understanding, generated from real projects in several languages.

* ``locate`` / ``locations``: "Where is the code that <paraphrase>?" where the
  paraphrase is a definition's doc sentence without the definition's own name
  words or anything code-like. Ground truth: the definition's path and line
  range (its leading comment included).
* ``impact`` / ``callers``: "Which functions would break if `f` changed its
  return type?"; ground truth: the functions enclosing ``f``'s call sites.
* ``how`` / ``paths``: "How does <feature> work?" where the feature is a
  file's own docstring or leading comment (identifiers removed); ground truth:
  that file plus the repository files it imports.

Python ground truth comes from ``ast`` (whole docstrings, call sites); C,
JavaScript, TypeScript, Go and Rust definitions from the project's tree-sitter
index (:func:`rlm_mcp.index.load`), with leading comments read in full from the
file; Go and Rust docs, imports and resolved call sites from
:mod:`benchmarks.eval.gorust` (the same grammars).
Only unambiguous candidates are kept: a doc sentence that appears once, a name
defined in one file, callers whose names are not shared by many definitions.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from benchmarks.eval.gorust import GoRust, doc_comment_above, name_words_of
from benchmarks.eval.phrasing import how_question, impact_question, locate_question
from benchmarks.eval.sourcetext import (
    ImportResolver,
    called_names,
    comment_above,
    describe,
    file_comment_blocks,
    identifier_words,
    is_license,
    language_of,
    paraphrase,
    sentence_words,
    stemmed,
)
from rlm_mcp.config import IndexSettings
from rlm_mcp.index import Definition, Repository, load

__all__ = [
    "KIND_FORMATS",
    "UnderstandingFacts",
    "candidates",
    "pick",
    "scan",
]

KIND_FORMATS = {"locate": "locations", "impact": "callers", "how": "paths"}
KIND_CYCLE = ("locate", "impact", "how")

_LOCATE_KINDS = frozenset(
    {"function", "method", "class", "struct", "interface", "type", "enum", "trait", "macro"}
)
_FUNC_KINDS = frozenset({"function", "method"})
_FAMILY = {"python": "python", "c": "c", "javascript": "js", "typescript": "js"}
_GO_RUST = frozenset({"go", "rust"})
_MAX_SENTENCE_CHARS = 220
# Names a grammar misreads as functions (a C macro can make `if (...) {` look like one).
_KEYWORDS = frozenset({"if", "for", "while", "switch", "return", "sizeof", "catch", "do", "else"})
_MAX_HOW_FILES = 6
_IMPACT_CALLERS = (2, 8)

_STOP = frozenset(
    """a an the of to in on for and or is are be by with from as at it its this that
    these those if when whether into not no any all each""".split()  # noqa: SIM905
)
# -- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Def:
    path: str
    name: str
    qualname: str
    kind: str
    language: str
    line: int
    start: int
    end: int
    sentence: str = ""


@dataclass(slots=True)
class FileFacts:
    path: str
    language: str
    sentence: str
    imports: set[str]
    name_words: tuple[str, ...] | None = None  # the doc's own name words (else the stem's)


@dataclass(slots=True)
class UnderstandingFacts:
    """What the candidates are built from (kept separate so tests can inspect it)."""

    defs: list[Def]
    calls: dict[tuple[str, int], frozenset[str]]  # Python: (path, start) -> called names
    callers: dict[str, list[Def]]  # C/JS/TS/Go/Rust: function name -> functions calling it
    files: list[FileFacts]
    name_files: dict[str, set[str]]  # name -> files that define it (any language, any kind)
    name_defs: Counter[str]
    _importers: dict[str, set[str]] | None = None

    def importers(self, path: str) -> set[str]:
        """``path`` and the files that import or include it."""
        if self._importers is None:
            self._importers = defaultdict(set)
            for f in self.files:
                for target in f.imports:
                    self._importers[target].add(f.path)
        return {path} | self._importers.get(path, set())


def _py_scan(
    rel: str, text: str, resolver: ImportResolver
) -> tuple[list[Def], dict[tuple[str, int], frozenset[str]], FileFacts | None]:
    try:
        tree = ast.parse(text, filename=rel)
    except (SyntaxError, ValueError):
        return [], {}, None
    defs: list[Def] = []
    calls: dict[tuple[str, int], frozenset[str]] = {}

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                is_class = isinstance(child, ast.ClassDef)
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                doc = ast.get_docstring(child) or ""
                kind = "class" if is_class else ("method" if in_class else "function")
                d = Def(
                    path=rel,
                    name=child.name,
                    qualname=prefix + child.name,
                    kind=kind,
                    language="python",
                    line=child.lineno,
                    start=start,
                    end=child.end_lineno or child.lineno,
                    sentence=describe(doc.splitlines()) if doc else "",
                )
                defs.append(d)
                if not is_class:
                    calls[(rel, start)] = frozenset(called_names(child))
                visit(child, prefix + child.name + ".", is_class)
            else:
                visit(child, prefix, in_class)

    visit(tree, "", False)
    doc = ast.get_docstring(tree) or ""
    facts = FileFacts(
        rel,
        "python",
        describe(doc.splitlines()) if doc else "",
        resolver.targets(rel, text, tree=tree),
    )
    return defs, calls, facts


def _index_defs(rel: str, lang: str, lines: Sequence[str], outline: list[Definition]) -> list[Def]:
    first_of: dict[str, int] = {}
    for d in outline:
        first_of[d.qualname] = min(first_of.get(d.qualname, d.start_line), d.start_line)
    out = []
    for d in outline:
        if lang in _GO_RUST:
            text, comment_start = doc_comment_above(lines, d.start_line, lang)
        else:
            text, comment_start = comment_above(lines, d.start_line)
        sentence = describe(text) if text else ""
        out.append(
            Def(
                path=rel,
                name=d.name,
                qualname=d.qualname,
                kind=d.kind,
                language=lang,
                line=d.start_line,
                start=min(comment_start, first_of[d.qualname]),
                end=d.end_line,
                sentence=sentence,
            )
        )
    return out


def _file_sentence(lines: Sequence[str]) -> str:
    for block, apart in file_comment_blocks(lines):
        if is_license(block):
            continue
        if not apart:
            return ""  # glued to the first definition: it documents that, not the file
        sentence = describe(block)
        if sentence:
            return sentence
    return ""


def _innermost(defs: Sequence[Definition], line: int) -> Definition | None:
    best: Definition | None = None
    for d in defs:
        inside = d.kind in _FUNC_KINDS and d.start_line <= line <= d.end_line
        if inside and (best is None or d.start_line >= best.start_line):
            best = d
    return best


def _index_callers(
    repo: Repository,
    outlines: dict[str, list[Definition]],
    name: str,
    target: Definition,
    family: str,
    visible: set[str] | None,
) -> list[Def]:
    """Functions enclosing calls of ``name`` in files of its language family.

    ``visible`` (when given) are the only files whose calls can reach the
    target: a plain function is reached from its own file and the files that
    import it, a C ``static`` one from its own file; any other same-named call
    is some other library's function.
    """
    found: dict[tuple[str, int], Def] = {}
    for ref in repo.references(name, limit=5000):
        lang = language_of(ref.path)
        if ref.kind != "call" or lang is None or _FAMILY.get(lang) != family:
            continue
        if visible is not None and ref.path not in visible:
            continue
        if ref.path == target.path and target.start_line <= ref.line <= target.end_line:
            continue
        enc = _innermost(outlines.get(ref.path, []), ref.line)
        if enc is None or enc.name == name or enc.name in _KEYWORDS:
            continue
        found[(enc.path, enc.start_line)] = Def(
            enc.path, enc.name, enc.qualname, enc.kind, lang, enc.start_line, enc.start_line,
            enc.end_line,
        )  # fmt: skip
    return sorted(found.values(), key=lambda d: (d.path, d.start))


def _go_rust_repo(root: Path, texts: dict[str, str]) -> GoRust | None:
    """The Go and Rust facts of a repository with such files (``go.mod`` files read too)."""
    if not any(language_of(p) in _GO_RUST for p in texts):
        return None
    mods = sorted(p.relative_to(root).as_posix() for p in root.rglob("go.mod") if p.is_file())
    return GoRust({**texts, **{m: (root / m).read_text(encoding="utf-8") for m in mods}})


def _file_facts(
    path: str, lang: str, text: str, resolver: ImportResolver, gorust: GoRust | None
) -> FileFacts:
    """A C/JS/TS file's leading comment and imports; a Go/Rust file's package or module doc."""
    if gorust is None or lang not in _GO_RUST:
        return FileFacts(
            path, lang, _file_sentence(text.splitlines()), resolver.targets(path, text)
        )
    doc = gorust.file_doc(path)
    words = tuple(name_words_of(path, gorust.package_name(path)))
    return FileFacts(path, lang, describe(doc) if doc else "", gorust.imports(path), words)


def _go_rust_callers(
    gorust: GoRust | None,
    outlines: dict[str, list[Definition]],
    funcs: Sequence[Definition],
    lang: str,
) -> list[Def] | None:
    """Functions around the resolved call sites of a Go or Rust function or method.

    None when the name has two definitions in its file (a method of two types)
    or a call site is ambiguous (see :meth:`GoRust.call_sites`); calls in the
    target's own body and in functions of its name are left out.
    """
    if gorust is None or len(funcs) != 1:
        return None
    (target,) = funcs
    sites = gorust.call_sites(target.path, target.kind, target.qualname, target.start_line)
    if sites is None:
        return None
    found: dict[tuple[str, int], Def] = {}
    for site in sites:
        if site.path == target.path and target.start_line <= site.line <= target.end_line:
            continue
        enc = _innermost(outlines.get(site.path, []), site.line)
        if enc is None or enc.name == target.name:
            continue
        found[(enc.path, enc.start_line)] = Def(
            enc.path, enc.name, enc.qualname, enc.kind, lang, enc.start_line, enc.start_line,
            enc.end_line,
        )  # fmt: skip
    return sorted(found.values(), key=lambda d: (d.path, d.start))


def scan(root: Path, index_cache: Path) -> UnderstandingFacts:
    """Read every source file of ``root``; Python through ``ast``, the rest through the index."""
    paths = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and language_of(p.relative_to(root).as_posix())
    )
    texts = {p: (root / p).read_text(encoding="utf-8", errors="replace") for p in paths}
    resolver = ImportResolver(paths)
    gorust = _go_rust_repo(root, texts)
    defs: list[Def] = []
    calls: dict[tuple[str, int], frozenset[str]] = {}
    files: list[FileFacts] = []
    callers: dict[str, list[Def]] = {}
    name_files: defaultdict[str, set[str]] = defaultdict(set)
    name_defs: Counter[str] = Counter()
    repo = load(root, IndexSettings(cache_dir=index_cache, watch=False))
    try:
        outlines = {p: repo.outline(p) for p in repo.files()}
        for p, outline in outlines.items():
            for d in outline:
                name_files[d.name].add(p)
            name_defs.update({(d.name, d.start_line): d.name for d in outline}.values())
        for p in paths:
            lang = language_of(p) or ""
            lines = texts[p].splitlines()
            if lang == "python":
                pd, pc, pf = _py_scan(p, texts[p], resolver)
                defs += pd
                calls.update(pc)
                if pf is not None:
                    files.append(pf)
                continue
            defs += _index_defs(p, lang, lines, outlines.get(p, []))
            files.append(_file_facts(p, lang, texts[p], resolver, gorust))
        facts = UnderstandingFacts(defs, calls, callers, files, dict(name_files), name_defs)
        # C/JS/TS/Go/Rust callers, for function names defined in one file only.
        for name, where in sorted(name_files.items()):
            if len(where) != 1 or len(name) < 6 or name.startswith("__"):
                continue
            (p,) = where
            def_lang = language_of(p)
            if def_lang is None or def_lang == "python":
                continue
            funcs = [d for d in outlines.get(p, []) if d.name == name and d.kind in _FUNC_KINDS]
            if not funcs:
                continue
            if def_lang in _GO_RUST:
                found = _go_rust_callers(gorust, outlines, funcs, def_lang)
                if found is not None:
                    callers[name] = found
                continue
            target = max(funcs, key=lambda d: d.end_line - d.start_line)
            visible: set[str] | None = None
            if def_lang == "c":
                head = texts[p].splitlines()[target.start_line - 1 : target.start_line]
                if head and head[0].lstrip().startswith("static"):
                    visible = {p}
            elif target.kind == "function":
                visible = facts.importers(p)
            callers[name] = _index_callers(repo, outlines, name, target, _FAMILY[def_lang], visible)
    finally:
        repo.close()
    return facts


def _informative(text: str, original: str) -> bool:
    """At least five words, three of them content words, and mostly prose to begin with.

    A sentence that lost over 40% of its words to code removal was mostly code
    (``Hack ... require('yargs')(...).argv``); one with ``=``, braces or ``;``
    is code; a question that ends in "?" is not a description.
    """
    words = sentence_words(text)
    content = [w for w in words if w.lower() not in _STOP and len(w) >= 3]
    return (
        len(words) >= 5
        and len(content) >= 3
        and len(text) <= _MAX_SENTENCE_CHARS
        and len(words) >= 0.6 * len(sentence_words(original))
        and not original.rstrip().endswith("?")
        and not any(c in original for c in "={};")
    )


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# -- candidates ----------------------------------------------------------------------------------


class _Docs:
    """Every doc sentence of the repository, to catch a paraphrase that fits another one.

    Dropping ``get`` and ``quarter`` from "Get the year quarter of the given date"
    leaves "the year of the given date": the doc of ``getYear``. A paraphrase
    whose stemmed words occur in a row inside another definition's doc is
    ambiguous and is not asked.
    """

    def __init__(self, sentences: Sequence[str]) -> None:
        self.text = "|".join(f" {stemmed(s)} " for s in sentences)

    def ambiguous(self, paraphrased: str, own: str) -> bool:
        needle = f" {stemmed(paraphrased)} "
        return self.text.count(needle) > (1 if needle in f" {stemmed(own)} " else 0)


def _without_go_name(sentence: str, name: str) -> str:
    """A Go doc sentence without the name it starts with by convention ("ServeHTTP
    dispatches ...", "A Route stores ..."): ``URLHost`` has no words to drop."""
    words = sentence.split()
    for k in (0, 1):
        if len(words) > k + 1 and words[k] == name and (k == 0 or words[0] in ("A", "An", "The")):
            return " ".join(words[k + 1 :])
    return sentence


def _locate(
    facts: UnderstandingFacts, sentences: Counter[str], docs: _Docs
) -> list[dict[str, Any]]:
    rows = []
    for d in facts.defs:
        if d.kind not in _LOCATE_KINDS or not d.sentence or sentences[_norm(d.sentence)] != 1:
            continue
        if len(facts.name_files.get(d.name, ())) > 1:
            continue  # defined in two files (a header and its source): two right answers
        sentence = _without_go_name(d.sentence, d.name) if d.language == "go" else d.sentence
        text = paraphrase(sentence, identifier_words(d.name))
        if not _informative(text, d.sentence) or docs.ambiguous(text, d.sentence):
            continue
        rows.append((d, text))
    seen = Counter(_norm(text) for _, text in rows)
    out = []
    for d, text in rows:
        if seen[_norm(text)] != 1:
            continue
        out.append(
            {
                "question": locate_question(text),
                "expected": {
                    "path": d.path,
                    "line": d.line,
                    "start": d.start,
                    "end": d.end,
                    "name": d.qualname,
                    "kind": d.kind,
                    "language": d.language,
                    "doc": d.sentence,
                },
            }
        )
    return out


def _caller_rows(callers: Sequence[Def]) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "qualname": c.qualname, "path": c.path, "start": c.start, "end": c.end}
        for c in callers
    ]


def _impact(facts: UnderstandingFacts) -> list[dict[str, Any]]:
    lo, hi = _IMPACT_CALLERS
    py_funcs = [d for d in facts.defs if d.language == "python" and d.kind != "class"]
    py_counts = Counter(d.name for d in py_funcs)
    class_names = {d.name for d in facts.defs if d.kind == "class"}
    found: list[tuple[str, str, str, list[Def]]] = []
    for target in py_funcs:
        name = target.name
        if py_counts[name] != 1 or len(name) < 6 or name.startswith("__") or name in class_names:
            continue
        if len(facts.name_files.get(name, ())) > 1:
            continue
        if target.kind == "method":
            visible = None
        elif "." in target.qualname:  # nested: callable from its own file only
            visible = {target.path}
        else:
            visible = facts.importers(target.path)
        callers = [
            d
            for d in py_funcs
            if d.name != name
            and (visible is None or d.path in visible)
            and name in facts.calls.get((d.path, d.start), frozenset())
        ]
        found.append((name, target.path, "python", callers))
    for name, callers in facts.callers.items():
        (path,) = facts.name_files[name]
        found.append((name, path, language_of(path) or "", callers))
    out = []
    for name, path, lang, callers in sorted(found, key=lambda t: (t[1], t[0])):
        if not lo <= len(callers) <= hi or name in class_names:
            continue
        if any(facts.name_defs[c.name] > 3 for c in callers):
            continue  # a caller name shared by many definitions makes names ambiguous
        out.append(
            {
                "question": impact_question(name, path),
                "expected": {
                    "function": name,
                    "path": path,
                    "language": lang,
                    "callers": _caller_rows(callers),
                    "names": sorted({c.name for c in callers}),
                    "paths": sorted({c.path for c in callers}),
                },
            }
        )
    return out


def _how(facts: UnderstandingFacts, sentences: Counter[str], docs: _Docs) -> list[dict[str, Any]]:
    rows = []
    for f in facts.files:
        if not f.sentence or sentences[_norm(f.sentence)] != 1:
            continue
        refs = [f.path, *sorted(f.imports - {f.path})]
        if len(refs) > _MAX_HOW_FILES:
            continue
        stem = PurePosixPath(f.path).stem
        if stem in ("__init__", "index"):
            stem = PurePosixPath(f.path).parent.name
        words = f.name_words if f.name_words is not None else identifier_words(stem)
        text = paraphrase(f.sentence, words)
        if _informative(text, f.sentence) and not docs.ambiguous(text, f.sentence):
            rows.append((f, text, refs))
    seen = Counter(_norm(text) for _, text, _ in rows)
    return [
        {
            "question": how_question(text),
            "expected": {"path": f.path, "paths": refs, "language": f.language, "doc": f.sentence},
        }
        for f, text, refs in rows
        if seen[_norm(text)] == 1
    ]


def candidates(facts: UnderstandingFacts) -> dict[str, list[dict[str, Any]]]:
    """Every unambiguous question per kind, in a stable order."""
    sentences = Counter(_norm(d.sentence) for d in facts.defs if d.sentence)
    sentences.update(_norm(f.sentence) for f in facts.files if f.sentence)
    docs = _Docs(sorted({d.sentence for d in facts.defs} | {f.sentence for f in facts.files}))
    return {
        "locate": _locate(facts, sentences, docs),
        "impact": _impact(facts),
        "how": _how(facts, sentences, docs),
    }


def pick(
    cands: dict[str, list[dict[str, Any]]], repo: str, per_repo: int, seed: int
) -> list[tuple[str, int, dict[str, Any]]]:
    """``per_repo`` questions cycling locate/impact/how, languages taking turns within a kind.

    Each (kind, language) list is shuffled with ``Random(f"{seed}:{repo}:{kind}:{lang}")``;
    a kind with nothing left yields its turn to the next kind.
    """
    queues: dict[str, list[dict[str, Any]]] = {}
    for kind in KIND_CYCLE:
        by_lang: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in cands.get(kind, []):
            by_lang[str(c["expected"].get("language", ""))].append(c)
        lists = []
        for lang in sorted(by_lang):
            items = list(by_lang[lang])
            random.Random(f"{seed}:{repo}:{kind}:{lang}").shuffle(items)
            lists.append(items)
        merged = []
        for i in range(max((len(x) for x in lists), default=0)):
            merged += [x[i] for x in lists if i < len(x)]
        queues[kind] = merged
    used: Counter[str] = Counter()
    out: list[tuple[str, int, dict[str, Any]]] = []
    for slot in range(per_repo):
        for step in range(len(KIND_CYCLE)):
            kind = KIND_CYCLE[(slot + step) % len(KIND_CYCLE)]
            if used[kind] < len(queues[kind]):
                out.append((kind, used[kind], queues[kind][used[kind]]))
                used[kind] += 1
                break
    return out
