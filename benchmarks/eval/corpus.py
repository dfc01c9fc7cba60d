"""Test repositories made from real code.

A repository is a *recipe*: a source (the running interpreter's standard
library, a PyPI source distribution, an npm package tarball, a Debian package
of Go module or Rust crate sources, or a local directory), a list of members (files or directories relative to that
source), the file extensions to keep and globs to drop; or a list of such
parts, each copied under its own directory. :func:`materialize` copies the
members' files into a cache directory, so the same recipe always gives the
same tree; a content hash detects drift.

Downloads happen only in :func:`materialize` (the ``generate`` step), with the
registries' own clients (``pip download``, ``npm pack``, ``apt-get download``),
never at import time.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.eval.sourcetext import language_of
from rlm_mcp.backends.base import estimate_tokens

__all__ = [
    "DEFAULT_REPOS",
    "DEV_REPOS",
    "EXCLUDED_DIRS",
    "SOURCE_EXTENSIONS",
    "RepoSpec",
    "debian_source",
    "iter_files",
    "iter_py_files",
    "materialize",
    "npm_source",
    "pypi_source",
    "repo_languages",
    "repo_tokens",
    "stdlib_dir",
    "tree_hash",
]

EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}
)
# Also skipped in repositories other than the standard library's.
PACKAGE_EXCLUDED_DIRS = frozenset({"__tests__", "node_modules", "benchmarks", "benchmark"})
SOURCE_EXTENSIONS = (".py", ".c", ".h", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")
DECLARATIONS = ("*.d.ts", "*.d.mts", "*.d.cts", "*.min.js", "*.map")
# Go keeps go.mod (it names the module, so imports resolve); tests and fixtures go.
GO_EXTENSIONS = (".go", "go.mod")
GO_EXCLUDED = ("*_test.go", "*testdata/*")
RUST_EXTENSIONS = (".rs",)
RUST_EXCLUDED = ("benches/*", "examples/*", "build.rs")


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """How to build one test repository.

    Attributes:
        name: directory name in the cache (and in question ids).
        members: files or directories relative to the source; ``("",)`` is all of it.
        source: ``stdlib``, ``pypi:<name>==<version>`` (an sdist), ``npm:<name>@<version>``
            (a package tarball), ``deb:<package>=<version>`` (a Debian package of Go
            or Rust sources) or ``dir:<path>``; downloads happen once, into the cache.
        extensions: file name endings to keep.
        exclude: globs (over paths relative to the source) to drop.
        parts: when given, the repository is these specs side by side, each under
            a directory named after the part; ``members`` and ``source`` are unused.
    """

    name: str
    members: tuple[str, ...]
    source: str = "stdlib"
    extensions: tuple[str, ...] = (".py",)
    exclude: tuple[str, ...] = ()
    parts: tuple[RepoSpec, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "members": list(self.members)}
        out["source"] = self.source
        if self.extensions != (".py",):
            out["extensions"] = list(self.extensions)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        if self.parts:
            out["parts"] = [p.as_dict() for p in self.parts]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoSpec:
        return cls(
            name=str(data["name"]),
            members=tuple(data["members"]),
            source=str(data.get("source", "stdlib")),
            extensions=tuple(data.get("extensions") or (".py",)),
            exclude=tuple(data.get("exclude") or ()),
            parts=tuple(cls.from_dict(p) for p in data.get("parts") or ()),
        )


# Sizes (in the index's ~4-characters-per-token estimate, CPython 3.11) span
# 4k to 3M tokens: a window of 8k sees all of the first, almost none of the last.
DEFAULT_REPOS: tuple[RepoSpec, ...] = (
    RepoSpec("s004k-shlex-bisect", ("shlex.py", "bisect.py")),
    RepoSpec("s012k-json", ("json",)),
    RepoSpec("s030k-collections-concurrent", ("collections", "concurrent")),
    RepoSpec("s094k-email", ("email",)),
    RepoSpec("s315k-asyncio-email-http-logging", ("asyncio", "email", "http", "logging")),
    RepoSpec(
        "s1m-many-packages",
        (
            "asyncio",
            "collections",
            "concurrent",
            "email",
            "http",
            "idlelib",
            "importlib",
            "json",
            "lib2to3",
            "logging",
            "multiprocessing",
            "tkinter",
            "unittest",
            "urllib",
            "wsgiref",
            "xml",
        ),
    ),
    RepoSpec("s3m-stdlib", ("",)),
)


def _pkg(name: str, members: tuple[str, ...], source: str, *exclude: str) -> RepoSpec:
    return RepoSpec(name, members, source, SOURCE_EXTENSIONS, DECLARATIONS + exclude)


# Pinned packages of the dev set: Python (+ C) sdists from PyPI, JavaScript and
# TypeScript tarballs from npm. Flask, requests and sqlfluff are held out for
# other checks and must not appear here.
_MARKUPSAFE = _pkg("markupsafe", ("src",), "pypi:markupsafe==2.1.5")
_MSGPACK = _pkg("msgpack", ("msgpack",), "pypi:msgpack==1.1.0", "msgpack/_cmsgpack.c")
_ATTRS = _pkg("attrs", ("src",), "pypi:attrs==24.2.0")
_CLICK = _pkg("click", ("src",), "pypi:click==8.1.7")
_JINJA2 = _pkg("jinja2", ("src",), "pypi:jinja2==3.1.4")
_PSUTIL = _pkg("psutil", ("psutil",), "pypi:psutil==6.1.0")
_COMMANDER = _pkg("commander", ("lib", "index.js"), "npm:commander@12.1.0")
_YARGS = _pkg("yargs", ("build/lib", "lib", "index.cjs", "index.mjs"), "npm:yargs@17.7.2")
# fp.mjs, index.mjs and locale.mjs are generated re-export lists (the index skips them).
_DATE_FNS = RepoSpec(
    "date-fns",
    ("",),
    "npm:date-fns@3.6.0",
    (".mjs",),
    (*DECLARATIONS, "fp/*", "locale/*", "fp.mjs", "index.mjs", "locale.mjs"),
)
_RXJS = _pkg("rxjs", ("src",), "npm:rxjs@7.8.1")
_ZOD = _pkg("zod", ("src",), "npm:zod@3.25.76", "*/tests/*", "*/locales/*")


def _go(name: str, package: str, *exclude: str) -> RepoSpec:
    return RepoSpec(name, ("",), f"deb:{package}", GO_EXTENSIONS, GO_EXCLUDED + exclude)


def _rust(name: str, package: str, *exclude: str) -> RepoSpec:
    return RepoSpec(name, ("",), f"deb:{package}", RUST_EXTENSIONS, RUST_EXCLUDED + exclude)


# Go modules and Rust crates, as Debian ships them (golang-*-dev, librust-*-dev).
_MUX = _go("mux", "golang-github-gorilla-mux-dev=1.8.0-1")
_COBRA = _go("cobra", "golang-github-spf13-cobra-dev=1.6.1-1")
_PFLAG = _go("pflag", "golang-github-spf13-pflag-dev=1.0.6~git20210604-d5e0c0615ace-1")
_GO_TOML = _go("go-toml", "golang-github-pelletier-go-toml.v2-dev=2.0.6-1", "internal/testsuite/*")
# backport.rs re-creates std APIs (Layout::from_size_align_unchecked) for rustc < 1.36.
_SEMVER = _rust("semver", "librust-semver-dev=1.0.14-1", "src/backport.rs")
_REGEX = _rust("regex", "librust-regex-dev=1.7.1-1")
# unicode_tables/ is generated (ucd-generate); clap's src/_*/ are documentation-only modules.
_REGEX_SYNTAX = _rust("regex-syntax", "librust-regex-syntax-dev=0.6.27-1", "src/unicode_tables/*")
_CLAP = _rust("clap", "librust-clap-dev=4.0.32-1", "src/_*", "src/bin/*")


def _sized(name: str, spec: RepoSpec, members: tuple[str, ...] | None = None) -> RepoSpec:
    return dataclasses.replace(spec, name=name, members=members or spec.members)


def _each(pattern: str, names: str) -> tuple[str, ...]:
    return tuple(pattern.format(n) for n in names.split())


_DATE_FNS_MINI = _each(
    "{}.mjs",
    """toDate constructFrom addDays addMonths addWeeks addYears addQuarters subDays subMonths
    subWeeks subYears subQuarters startOfDay endOfDay differenceInCalendarDays
    _lib/getTimezoneOffsetInMilliseconds startOfWeek endOfWeek isSameDay isSameWeek""",
)
_JINJA2_MINI = _each(
    "src/jinja2/{}.py",
    "optimizer visitor meta nativetypes debug exceptions async_utils defaults constants",
)
_PSUTIL_LINUX = (
    "psutil/arch/linux",
    "psutil/_psutil_common.c",
    "psutil/_psutil_common.h",
    "psutil/_psutil_linux.c",
)
_RXJS_OPERATORS = _each(
    "src/internal/operators/{}.ts",
    """map filter take skip first last reduce scan scanInternals distinct defaultIfEmpty
    throwIfEmpty takeLast OperatorSubscriber mergeInternals mergeMap concatMap mergeAll
    concatAll""",
) + _each("src/internal/util/{}.ts", "lift noop identity isFunction")

# Sizes from 5k to 1M tokens (the index's ~4 characters per token): every bucket from
# "<=8k" to "512k-2M" holds at least one repository; see README.md.
DEV_REPOS: tuple[RepoSpec, ...] = (
    _sized("d005k-markupsafe", _MARKUPSAFE),
    _sized("d006k-date-fns-mini", _DATE_FNS, _DATE_FNS_MINI),
    _sized("d008k-jinja2-mini", _JINJA2, _JINJA2_MINI),
    _sized("d009k-psutil-linux", _PSUTIL, _PSUTIL_LINUX),
    _sized("d015k-rxjs-operators", _RXJS, _RXJS_OPERATORS),
    _sized("d023k-msgpack", _MSGPACK),
    _sized("d027k-commander", _COMMANDER),
    _sized("d044k-attrs", _ATTRS),
    _sized("d121k-jinja2", _JINJA2),
    _sized("d124k-date-fns", _DATE_FNS),
    _sized("d204k-rxjs", _RXJS),
    _sized("d244k-psutil", _PSUTIL),
    RepoSpec(
        "d555k-js-ts",
        (),
        "parts",
        parts=(_COMMANDER, _YARGS, _DATE_FNS, _RXJS, _ZOD),
    ),
    RepoSpec(
        "d1m-all",
        (),
        "parts",
        parts=(
            _MARKUPSAFE,
            _MSGPACK,
            _ATTRS,
            _CLICK,
            _JINJA2,
            _PSUTIL,
            _COMMANDER,
            _YARGS,
            _DATE_FNS,
            _RXJS,
            _ZOD,
        ),
    ),
    # Go and Rust, from Debian's source packages (added after the others, so the
    # questions of the repositories above keep their order in the set).
    _sized("d016k-gorilla-mux", _MUX),
    _sized("d018k-semver", _SEMVER),
    _sized("d034k-go-toml", _GO_TOML),
    _sized("d051k-cobra", _COBRA),
    _sized("d112k-regex", _REGEX),
    _sized("d224k-clap", _CLAP),
    RepoSpec(
        "d666k-go-rust",
        (),
        "parts",
        parts=(_MUX, _COBRA, _PFLAG, _GO_TOML, _SEMVER, _REGEX, _REGEX_SYNTAX, _CLAP),
    ),
)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_py_files(base: Path) -> Iterator[Path]:
    """``*.py`` files under ``base`` (or ``base`` itself), skipping test and cache dirs."""
    yield from iter_files(base, (".py",))


def iter_files(
    base: Path,
    extensions: Sequence[str],
    *,
    excluded_dirs: frozenset[str] = EXCLUDED_DIRS,
) -> Iterator[Path]:
    """Files under ``base`` (or ``base`` itself) ending in one of ``extensions``."""
    ends = tuple(extensions)
    if base.is_file():
        if base.name.endswith(ends):
            yield base
        return
    for path in sorted(base.rglob("*")):
        if not path.name.endswith(ends):
            continue
        rel = path.relative_to(base).parts
        if any(part in excluded_dirs for part in rel[:-1]):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _shipped_tree(unpacked: Path) -> Path:
    """The source tree a Debian -dev package ships: the crate directory below
    ``usr/share/cargo/registry`` (``clap-4.0.32``), or the Go module below
    ``usr/share/gocode/src``, down while a directory holds nothing but one directory
    and no ``go.mod`` (``github.com/spf13/cobra``, ``github.com/pelletier/go-toml/v2``)."""
    crates = unpacked / "usr/share/cargo/registry"
    if crates.is_dir():
        entries = list(crates.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            return entries[0]
    cur = unpacked / "usr/share/gocode/src"
    if cur.is_dir():
        while not (cur / "go.mod").exists():
            entries = list(cur.iterdir())
            if len(entries) != 1 or not entries[0].is_dir():
                break
            cur = entries[0]
        return cur
    raise RuntimeError(f"no Go module or Rust crate under {unpacked}")


def debian_source(package: str, cache: Path) -> Path:
    """Download and unpack a Debian package of sources once (``apt-get download NAME=VERSION``,
    ``dpkg-deb -x``); returns the Go module or Rust crate directory it ships."""
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in package)
    dest = cache / "deb" / safe
    if dest.is_dir():
        return dest
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise RuntimeError(f"apt-get and dpkg-deb are needed to fetch {package} (Debian)")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [apt, "download", "-q", package], cwd=tmp, capture_output=True, text=True
        )
        debs = sorted(Path(tmp).glob("*.deb"))
        if done.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download {package} failed:\n{done.stderr[-2000:]}")
        unpacked = Path(tmp) / "unpacked"
        done = subprocess.run(
            [dpkg, "-x", str(debs[0]), str(unpacked)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {debs[0].name} failed:\n{done.stderr[-2000:]}")
        root = _shipped_tree(unpacked)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, dest, symlinks=True)
    return dest


def _unpack(archive: Path, into: Path) -> Path:
    """Extract an archive; returns its single top directory (or ``into``)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    tops = list(into.iterdir())
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else into


def pypi_source(requirement: str, cache: Path) -> Path:
    """Download and unpack an sdist once (``pip download --no-binary NAME --no-deps``).

    Only the named package is forced to source; the build backend pip needs to
    read the sdist's metadata may come as a wheel, which keeps that step cheap.
    """
    safe = requirement.replace("=", "_").replace("/", "_")
    dest = cache / "sdists" / safe
    if dest.is_dir():
        return dest
    name = requirement.split("==")[0].split("[")[0].strip()
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                name,
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                tmp,
                requirement,
            ],
            capture_output=True,
            text=True,
        )
        archives = sorted(p for p in Path(tmp).iterdir() if p.is_file())
        if done.returncode != 0 or not archives:
            raise RuntimeError(f"pip download {requirement} failed:\n{done.stderr[-2000:]}")
        root = _unpack(archives[0], Path(tmp) / "unpacked")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, dest)
    return dest


def npm_source(package: str, cache: Path) -> Path:
    """Fetch and unpack an npm package tarball once (``npm pack NAME@VERSION``)."""
    safe = package.replace("/", "_").replace("@", "_")
    dest = cache / "npm" / safe
    if dest.is_dir():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed to fetch {package} (install Node.js)")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npm, "pack", package, "--ignore-scripts", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        archives = sorted(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(f"npm pack {package} failed:\n{done.stderr[-2000:]}")
        root = _unpack(archives[0], Path(tmp) / "unpacked")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, dest)
    return dest


def _source_root(spec: RepoSpec, cache: Path) -> Path:
    if spec.source == "stdlib":
        return stdlib_dir()
    if spec.source.startswith("pypi:"):
        return pypi_source(spec.source.removeprefix("pypi:"), cache)
    if spec.source.startswith("npm:"):
        return npm_source(spec.source.removeprefix("npm:"), cache)
    if spec.source.startswith("deb:"):
        return debian_source(spec.source.removeprefix("deb:"), cache)
    if spec.source.startswith("dir:"):
        return Path(spec.source.removeprefix("dir:"))
    raise ValueError(f"unknown repository source {spec.source!r}")


def _tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in _tree_files(root):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass(slots=True)
class Materialized:
    spec: RepoSpec
    path: Path
    files: int = 0
    chars: int = 0
    digest: str = ""
    copied: list[str] = field(default_factory=list)


def _copy_members(spec: RepoSpec, src: Path, into: Path) -> None:
    excluded = EXCLUDED_DIRS if spec.source == "stdlib" else EXCLUDED_DIRS | PACKAGE_EXCLUDED_DIRS
    for member in spec.members or ("",):
        base = src / member if member else src
        if not base.exists():
            raise FileNotFoundError(f"{spec.name}: {base} does not exist")
        for path in iter_files(base, spec.extensions, excluded_dirs=excluded):
            rel = path.relative_to(src)
            if any(fnmatch.fnmatch(rel.as_posix(), pat) for pat in spec.exclude):
                continue
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def materialize(spec: RepoSpec, cache: Path, *, source_root: Path | None = None) -> Materialized:
    """Copy the spec's files into ``cache/repos/<name>``.

    Reused while its ``.complete`` marker holds the same recipe; a changed
    recipe (members, extensions, excluded globs) copies the files again.
    """
    dest = cache / "repos" / spec.name
    marker = dest.with_name(dest.name + ".complete")
    recipe = json.dumps(spec.as_dict(), sort_keys=True) + "\n"
    if not marker.exists() or marker.read_text() != recipe:  # a changed recipe rebuilds
        tmp = dest.with_name(dest.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        if spec.parts:
            for part in spec.parts:
                _copy_members(part, _source_root(part, cache), tmp / part.name)
        else:
            src = source_root if source_root is not None else _source_root(spec, cache)
            _copy_members(spec, src, tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        marker.write_text(recipe)
    out = Materialized(spec, dest)
    for path in _tree_files(dest):
        out.files += 1
        out.chars += len(path.read_text(encoding="utf-8", errors="replace"))
    out.digest = tree_hash(dest)
    return out


def repo_tokens(root: Path) -> int:
    return sum(repo_languages(root).values())


def repo_languages(root: Path) -> dict[str, int]:
    """Tokens per language (files the eval does not know count as ``other``)."""
    out: Counter[str] = Counter()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            lang = language_of(p.name) or "other"
            out[lang] += estimate_tokens(p.read_text(encoding="utf-8", errors="replace"))
    return dict(sorted(out.items()))
