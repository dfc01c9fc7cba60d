"""Test repositories made from real code available offline.

A repository is a *recipe*: a source (the running interpreter's standard
library, or an unpacked source distribution) and a list of members (files or
directories relative to that source). :func:`materialize` copies the members'
``*.py`` files into a cache directory, so the same recipe always gives the
same tree on the same interpreter; a content hash detects drift.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_REPOS",
    "EXCLUDED_DIRS",
    "RepoSpec",
    "iter_py_files",
    "materialize",
    "pypi_source",
    "stdlib_dir",
    "tree_hash",
]

EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}
)


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """How to build one test repository.

    Attributes:
        name: directory name in the cache (and in question ids).
        members: files or directories relative to the source; ``("",)`` is all of it.
        source: ``stdlib`` or ``pypi:<name>==<version>`` (an sdist, downloaded once).
    """

    name: str
    members: tuple[str, ...]
    source: str = "stdlib"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoSpec:
        return cls(
            name=str(data["name"]),
            members=tuple(data["members"]),
            source=str(data.get("source", "stdlib")),
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


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_py_files(base: Path) -> Iterator[Path]:
    """``*.py`` files under ``base`` (or ``base`` itself), skipping test and cache dirs."""
    if base.is_file():
        if base.suffix == ".py":
            yield base
        return
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).parts
        if any(part in EXCLUDED_DIRS for part in rel[:-1]):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def pypi_source(requirement: str, cache: Path) -> Path:
    """Download and unpack an sdist (``pip download --no-binary :all: --no-deps``) once."""
    safe = requirement.replace("=", "_").replace("/", "_")
    dest = cache / "sdists" / safe
    if dest.is_dir():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--no-build-isolation",
                "-d",
                tmp,
                requirement,
            ],
            check=True,
            capture_output=True,
        )
        archives = sorted(Path(tmp).iterdir())
        if not archives:
            raise RuntimeError(f"pip downloaded nothing for {requirement}")
        unpack = Path(tmp) / "unpacked"
        archive = archives[0]
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpack)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(unpack, filter="data")
        tops = list(unpack.iterdir())
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else unpack
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, dest)
    return dest


def _source_root(spec: RepoSpec, cache: Path) -> Path:
    if spec.source == "stdlib":
        return stdlib_dir()
    if spec.source.startswith("pypi:"):
        return pypi_source(spec.source.removeprefix("pypi:"), cache)
    raise ValueError(f"unknown repository source {spec.source!r}")


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
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


def materialize(spec: RepoSpec, cache: Path, *, source_root: Path | None = None) -> Materialized:
    """Copy the spec's files into ``cache/repos/<name>`` (reused when present)."""
    dest = cache / "repos" / spec.name
    marker = dest.with_name(dest.name + ".complete")
    if not marker.exists():
        src = source_root if source_root is not None else _source_root(spec, cache)
        tmp = dest.with_name(dest.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        members: Sequence[str] = spec.members or ("",)
        for member in members:
            base = src / member if member else src
            if not base.exists():
                raise FileNotFoundError(f"{spec.name}: {base} does not exist")
            for path in iter_py_files(base):
                rel = path.relative_to(src)
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        tmp.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        marker.write_text("ok\n")
    out = Materialized(spec, dest)
    for path in sorted(dest.rglob("*.py")):
        out.files += 1
        out.chars += len(path.read_text(encoding="utf-8", errors="replace"))
    out.digest = tree_hash(dest)
    return out
