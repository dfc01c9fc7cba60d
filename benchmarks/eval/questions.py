"""Question sets generated from real code, with ground truth from Python's ``ast``.

Kinds (``kind`` / requested ``format``):

* ``needle`` / ``path_line``: where is the function whose docstring begins
  with a given sentence; right when the file matches and the line falls in
  the definition's span (decorators to last line).
* ``callers`` / ``name_list``: which functions call ``name``; F1 over bare names.
* ``method_class`` / ``name_list``: which class defines method ``m`` and what
  it inherits from; F1 over {class} ∪ {direct bases}.
* ``count_params`` / ``integer``: how many ``def``s under a package take a
  parameter named ``p``; exact.

The ``dev`` suite asks questions that need understanding instead (``locate``,
``impact``, ``how``; see :mod:`benchmarks.eval.understanding`), over real
packages in Python, C, JavaScript, TypeScript, Go and Rust.

Nothing is written by hand: a fixed seed picks among candidates that have an
unambiguous answer, so a set can be regenerated at any size.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.eval import understanding
from benchmarks.eval.corpus import (
    DEFAULT_REPOS,
    DEV_REPOS,
    Materialized,
    RepoSpec,
    materialize,
    repo_languages,
)
from benchmarks.eval.sourcetext import called_names, first_sentence

__all__ = [
    "FORMAT_INSTRUCTIONS",
    "SUITES",
    "Question",
    "QuestionSet",
    "RepoFacts",
    "first_sentence",
    "generate_set",
    "load_set",
    "scan_repo",
]

SET_VERSION = 1
DEFAULT_SEED = 20250601

FORMAT_INSTRUCTIONS = {
    "path_line": "Answer with the file path and line number only, as path:line "
    "(for example pkg/module.py:123).",
    "name_list": "Answer with a comma-separated list of names only (for example: foo, Bar, baz).",
    "integer": "Answer with a single integer only.",
    "locations": "Answer with the location as path:line (for example pkg/module.py:123). "
    "If unsure, give up to 5 candidate locations, best first, one per line.",
    "callers": "Answer with a comma-separated list of the functions, each followed by its "
    "location, for example: foo (pkg/a.py:12), Bar.baz (pkg/b.js:40).",
    "paths": "Answer with the paths of the files that implement it, most important first, "
    "one per line (at most 5).",
}

RLM_FORMATS = {
    "path_line": "the file path and line number as 'path:line' (for example 'pkg/module.py:123')",
    "name_list": "a comma-separated list of the names (for example 'foo, Bar, baz')",
    "integer": "a single integer",
    "locations": "the location as 'path:line' (for example 'pkg/module.py:123'), or up to 5 "
    "candidate 'path:line' lines, best first",
    "callers": "a comma-separated list of the functions, each followed by its location, "
    "for example 'foo (pkg/a.py:12), Bar.baz (pkg/b.js:40)'",
    "paths": "the paths of the files that implement it, most important first, one per line "
    "(at most 5)",
}

# Named suites: the repositories and the question kinds they get.
SUITES: dict[str, tuple[RepoSpec, ...]] = {"stdlib": DEFAULT_REPOS, "dev": DEV_REPOS}

_SKIP_PARAMS = frozenset({"self", "cls", "args", "kwargs", "mcs", "metacls"})


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    repo: str
    kind: str
    format: str
    question: str
    expected: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        return cls(
            id=str(data["id"]),
            repo=str(data["repo"]),
            kind=str(data["kind"]),
            format=str(data["format"]),
            question=str(data["question"]),
            expected=dict(data["expected"]),
        )

    @property
    def prompt(self) -> str:
        """The question plus the requested answer format, as direct prompting receives it."""
        return f"{self.question}\n{FORMAT_INSTRUCTIONS[self.format]}"

    @property
    def rlm_prompt(self) -> str:
        """The same question for the RLM: the format applies to the FINAL answer, not replies.

        (Asking a small model to "answer with a list of names only" made it reply with
        bare names instead of code.)
        """
        return (
            f"{self.question}\nFind it with code first. Then call FINAL(answer) in a "
            f"```python block, where answer is {RLM_FORMATS[self.format]}."
        )


@dataclass(slots=True)
class RepoInfo:
    spec: RepoSpec
    files: int
    tokens: int
    digest: str
    languages: dict[str, int] = field(default_factory=dict)  # tokens per language

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.spec.as_dict(),
            "files": self.files,
            "tokens": self.tokens,
            "digest": self.digest,
        }
        if self.languages:
            out["languages"] = self.languages
        return out


@dataclass(slots=True)
class QuestionSet:
    seed: int
    recipe: dict[str, Any]
    repos: dict[str, RepoInfo]
    questions: list[Question]
    python: str = field(default_factory=lambda: sys.version.split()[0])

    @property
    def digest(self) -> str:
        raw = json.dumps([q.as_dict() for q in self.questions], sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:12]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": SET_VERSION,
            "seed": self.seed,
            "python": self.python,
            "recipe": self.recipe,
            "digest": self.digest,
            "repos": {name: info.as_dict() for name, info in self.repos.items()},
            "questions": [q.as_dict() for q in self.questions],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n", encoding="utf-8")


def load_set(path: Path) -> QuestionSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != SET_VERSION:
        raise ValueError(f"{path}: unsupported question-set version {data.get('version')!r}")
    repos = {
        name: RepoInfo(
            spec=RepoSpec.from_dict(info["spec"]),
            files=int(info["files"]),
            tokens=int(info["tokens"]),
            digest=str(info["digest"]),
            languages={str(k): int(v) for k, v in (info.get("languages") or {}).items()},
        )
        for name, info in data["repos"].items()
    }
    return QuestionSet(
        seed=int(data["seed"]),
        recipe=dict(data.get("recipe") or {}),
        repos=repos,
        questions=[Question.from_dict(q) for q in data["questions"]],
        python=str(data.get("python", "")),
    )


# -- facts from ast -------------------------------------------------------------------------


@dataclass(slots=True)
class FuncFact:
    path: str
    name: str
    qualname: str
    line: int
    start: int
    end: int
    doc_sentence: str
    params: frozenset[str]
    calls: frozenset[str]
    in_class: str | None


@dataclass(slots=True)
class ClassFact:
    path: str
    name: str
    line: int
    bases: tuple[str, ...]
    methods: frozenset[str]


@dataclass(slots=True)
class RepoFacts:
    functions: list[FuncFact] = field(default_factory=list)
    classes: list[ClassFact] = field(default_factory=list)
    top_dirs: list[str] = field(default_factory=list)


def _params(args: ast.arguments) -> frozenset[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    return frozenset(names)


def _base_name(expr: ast.expr) -> str:
    text = ast.unparse(expr)
    text = text.split("[", 1)[0]
    return text.rsplit(".", 1)[-1]


def scan_repo(root: Path) -> RepoFacts:
    facts = RepoFacts()
    tops: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "/" in rel:
            tops.add(rel.split("/", 1)[0])
        try:
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (SyntaxError, ValueError):
            continue

        def visit(node: ast.AST, prefix: str, cls: str | None, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    doc = ast.get_docstring(child) or ""
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    facts.functions.append(
                        FuncFact(
                            path=rel,
                            name=child.name,
                            qualname=prefix + child.name,
                            line=child.lineno,
                            start=start,
                            end=child.end_lineno or child.lineno,
                            doc_sentence=first_sentence(doc) if doc else "",
                            params=_params(child.args),
                            calls=frozenset(called_names(child)),
                            in_class=cls,
                        )
                    )
                    visit(child, prefix + child.name + ".", None)
                elif isinstance(child, ast.ClassDef):
                    methods = frozenset(
                        c.name
                        for c in child.body
                        if isinstance(c, ast.FunctionDef | ast.AsyncFunctionDef)
                    )
                    facts.classes.append(
                        ClassFact(
                            path=rel,
                            name=child.name,
                            line=child.lineno,
                            bases=tuple(_base_name(b) for b in child.bases),
                            methods=methods,
                        )
                    )
                    visit(child, prefix + child.name + ".", child.name)
                else:
                    visit(child, prefix, cls)

        visit(tree, "", None)
    facts.top_dirs = sorted(tops)
    return facts


# -- candidates per kind -------------------------------------------------------------------


def _needles(facts: RepoFacts) -> list[dict[str, Any]]:
    counts = Counter(f.doc_sentence.lower() for f in facts.functions if f.doc_sentence)
    out = []
    for f in facts.functions:
        s = f.doc_sentence
        if not (25 <= len(s) <= 160) or counts[s.lower()] != 1 or "'" in s:
            continue
        if len(s.split()) < 5:
            continue
        out.append(
            {
                "question": f"In which file and at which line is the function defined whose "
                f"docstring begins: '{s}'?",
                "expected": {
                    "path": f.path,
                    "line": f.line,
                    "start": f.start,
                    "end": f.end,
                    "name": f.qualname,
                },
            }
        )
    return out


def _callers(facts: RepoFacts) -> list[dict[str, Any]]:
    defs = Counter(f.name for f in facts.functions)
    class_names = {c.name for c in facts.classes}
    out = []
    for name, n in sorted(defs.items()):
        if n != 1 or len(name) < 6 or name.startswith("__") or name in class_names:
            continue
        callers = sorted({f.name for f in facts.functions if name in f.calls and f.name != name})
        if not 2 <= len(callers) <= 6:
            continue
        if any(defs[c] > 3 for c in callers):
            continue  # a caller name shared by many defs makes the answer ambiguous
        out.append(
            {
                "question": f"Which functions call `{name}`? Give the names of the functions "
                "(or methods) whose bodies call it.",
                "expected": {"names": callers},
            }
        )
    return out


def _method_classes(facts: RepoFacts) -> list[dict[str, Any]]:
    owners: defaultdict[str, list[ClassFact]] = defaultdict(list)
    for c in facts.classes:
        for m in c.methods:
            owners[m].append(c)
    plain = {f.name for f in facts.functions if f.in_class is None}
    out = []
    for method, classes in sorted(owners.items()):
        if len(classes) != 1 or method.startswith("_") or method in plain or len(method) < 6:
            continue
        cls = classes[0]
        bases = [b for b in cls.bases if b and b != "object"]
        if not bases:
            continue
        out.append(
            {
                "question": f"Which class defines a method named `{method}`, and which classes "
                "does that class directly inherit from? List the class first, then its bases.",
                "expected": {"names": [cls.name, *bases], "path": cls.path, "line": cls.line},
            }
        )
    return out


def _param_counts(facts: RepoFacts) -> list[dict[str, Any]]:
    scopes: list[tuple[str, str]] = [(d + "/", f"`{d}/`") for d in facts.top_dirs]
    if not scopes:
        scopes = [("", "the repository")]
    out = []
    for prefix, label in scopes:
        funcs = [f for f in facts.functions if f.path.startswith(prefix)]
        counts = Counter(p for f in funcs for p in f.params if p not in _SKIP_PARAMS)
        for param, n in sorted(counts.items()):
            if 2 <= n <= 12 and len(param) >= 3:
                out.append(
                    {
                        "question": f"How many functions or methods (def statements, nested "
                        f"ones included) in {label} take a parameter named `{param}`?",
                        "expected": {"count": n},
                    }
                )
    return out


_KINDS = {
    "needle": ("path_line", _needles),
    "callers": ("name_list", _callers),
    "method_class": ("name_list", _method_classes),
    "count_params": ("integer", _param_counts),
}


_FALLBACK = {"callers": "method_class", "method_class": "callers"}


def kinds_for(repo_index: int, per_repo: int) -> list[str]:
    relation = "callers" if repo_index % 2 == 0 else "method_class"
    cycle = ["needle", relation, "count_params"]
    other = "method_class" if relation == "callers" else "callers"
    cycle.append(other)
    return [cycle[i % len(cycle)] for i in range(per_repo)]


def _stdlib_questions(
    spec: RepoSpec, facts: RepoFacts, index: int, per_repo: int, seed: int
) -> list[Question]:
    out: list[Question] = []
    used: Counter[str] = Counter()
    for kind in kinds_for(index, per_repo):
        fmt, make = _KINDS[kind]
        candidates = make(facts)
        if used[kind] >= len(candidates) and kind in _FALLBACK:
            kind = _FALLBACK[kind]
            fmt, make = _KINDS[kind]
            candidates = make(facts)
        rng = random.Random(f"{seed}:{spec.name}:{kind}")
        rng.shuffle(candidates)
        pick = used[kind]
        if pick >= len(candidates):
            continue
        cand = candidates[pick]
        used[kind] += 1
        out.append(
            Question(
                id=f"{spec.name}/{kind}/{pick}",
                repo=spec.name,
                kind=kind,
                format=fmt,
                question=cand["question"],
                expected=cand["expected"],
            )
        )
    return out


def generate_set(
    cache: Path,
    *,
    specs: Sequence[RepoSpec] | None = None,
    per_repo: int = 3,
    seed: int = DEFAULT_SEED,
    source_root: Path | None = None,
    log: Any = None,
    suite: str = "stdlib",
) -> QuestionSet:
    """Build the repositories and pick ``per_repo`` questions for each, deterministically.

    ``suite`` chooses the question kinds: ``stdlib`` (needle, callers,
    method_class, count_params from ``ast``) or ``dev`` (locate, impact, how;
    ground truth from ``ast`` and the tree-sitter index). ``specs`` defaults to
    the suite's repositories.
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    if specs is None:
        specs = SUITES[suite]
    repos: dict[str, RepoInfo] = {}
    questions: list[Question] = []
    for index, spec in enumerate(specs):
        t0 = time.monotonic()
        mat: Materialized = materialize(spec, cache, source_root=source_root)
        langs = repo_languages(mat.path)
        tokens = sum(langs.values())
        repos[spec.name] = RepoInfo(
            spec, mat.files, tokens, mat.digest, langs if suite != "stdlib" else {}
        )
        if suite == "stdlib":
            facts = scan_repo(mat.path)
            questions += _stdlib_questions(spec, facts, index, per_repo, seed)
            what = f"{len(facts.functions)} functions"
        else:
            ufacts = understanding.scan(mat.path, cache / "index")
            cands = understanding.candidates(ufacts)
            for kind, n, cand in understanding.pick(cands, spec.name, per_repo, seed):
                questions.append(
                    Question(
                        id=f"{spec.name}/{kind}/{n}",
                        repo=spec.name,
                        kind=kind,
                        format=understanding.KIND_FORMATS[kind],
                        question=cand["question"],
                        expected=cand["expected"],
                    )
                )
            what = "candidates " + ", ".join(f"{k} {len(v)}" for k, v in cands.items())
        if log is not None:
            shares = ", ".join(f"{k} {v:,}" for k, v in langs.items())
            log(
                f"{spec.name}: {mat.files} files, ~{tokens:,} tokens ({shares}), "
                f"{what} ({time.monotonic() - t0:.1f}s)"
            )
    recipe: dict[str, Any] = {
        "per_repo": per_repo,
        "kinds": {k: v[0] for k, v in _KINDS.items()},
        "repos": [s.as_dict() for s in specs],
    }
    if suite != "stdlib":
        recipe["suite"] = suite
        recipe["kinds"] = dict(understanding.KIND_FORMATS)
    return QuestionSet(seed=seed, recipe=recipe, repos=repos, questions=questions)


def ensure_repos(
    qset: QuestionSet, cache: Path, *, source_root: Path | None = None
) -> dict[str, Path]:
    """Materialize every repository of a set; warn (via the return) on digest drift."""
    paths: dict[str, Path] = {}
    for name, info in qset.repos.items():
        mat = materialize(info.spec, cache, source_root=source_root)
        if mat.digest != info.digest:
            raise RuntimeError(
                f"repository {name} differs from the one the set was generated from "
                f"(digest {mat.digest} != {info.digest}); regenerate the set on this interpreter"
            )
        paths[name] = mat.path
    return paths


def iter_kinds() -> Iterable[str]:
    return iter(_KINDS)
