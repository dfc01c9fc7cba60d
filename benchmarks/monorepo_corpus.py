"""Assemble the monorepo benchmark corpus: >= 1 GB of real source in >= 100,000 files.

Usage: ``python benchmarks/monorepo_corpus.py [--cache DIR]`` (prints the corpus path).

Everything comes from source distributions fetched by package name with the
ordinary clients, cached under ``~/.cache/rlm-mcp-bench/monorepo`` (or
``--cache``) so a second run downloads and unpacks nothing:

- ``apt-get download``: ``linux-source-6.1``, the Linux kernel tree (C,
  assembly, Rust, Python, shell, Perl, make; about 1.3 GB in 80,000 files);
  ``golang-1.19-src`` (Go), ``rust-src`` (Rust), ``libboost1.81-dev`` (C++
  headers) and ``openjdk-17-source`` (Java, ``src.zip``);
- ``pip download --no-binary :all: --no-deps``: Python (Django, SymPy);
- ``npm pack``: JavaScript and TypeScript (TypeScript, RxJS, Lodash, Babel).

The tree is a git repository with two branches: ``main`` (everything) and
``switch``, where 10,000 source files (picked deterministically) gain a new
function each. Checking out one from the other changes exactly those files: the
branch-switch figure of ``monorepo_bench.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE = (
    Path(os.environ.get("RLM_BENCH_CACHE", Path.home() / ".cache" / "rlm-mcp-bench")) / "monorepo"
)
APT = ("linux-source-6.1", "golang-1.19-src", "rust-src", "libboost1.81-dev", "openjdk-17-source")
PIP = ("Django==5.1.4", "sympy==1.13.3")
NPM = (
    "typescript@5.7.2",
    "rxjs@7.8.1",
    "lodash@4.17.21",
    "@babel/core@7.26.0",
    "@babel/types@7.26.3",
)
SWITCH_FILES = 10_000
SWITCH_BRANCH = "switch"
READY = ".rlm-bench-ready"


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 1800) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, timeout=timeout, stdout=subprocess.DEVNULL)


def _download(dl: Path) -> list[Path]:
    dl.mkdir(parents=True, exist_ok=True)
    for name in APT:
        if not list(dl.glob(f"{name}_*.deb")):
            _run(["apt-get", "download", name], cwd=dl)
    for spec in PIP:
        stem = spec.split("==")[0].lower().replace("-", "_")
        if not [p for p in dl.iterdir() if p.name.lower().replace("-", "_").startswith(stem + "-")]:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "-d",
                    str(dl),
                    spec,
                ]
            )
    npm_dir = dl / "npm"
    npm_dir.mkdir(exist_ok=True)
    for spec in NPM:
        base = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
        if not list(npm_dir.glob(f"{base}-*.tgz")):
            _run(["npm", "pack", "--silent", spec], cwd=npm_dir)
    return sorted(p for p in dl.rglob("*") if p.is_file())


def _unpack(archive: Path, dest: Path) -> None:
    name = archive.name
    if name.endswith(".deb"):
        tmp = dest.parent / (dest.name + ".deb")
        tmp.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(archive), str(tmp)])
        dest.mkdir(parents=True, exist_ok=True)
        tarballs = list(tmp.rglob("linux-source-*.tar.xz"))
        zips = list(tmp.rglob("src.zip"))
        if tarballs:
            _run(["tar", "-xJf", str(tarballs[0]), "-C", str(dest)])
        elif zips:
            with zipfile.ZipFile(zips[0].resolve()) as z:
                z.extractall(dest)
        else:
            shutil.move(str(tmp / "usr"), str(dest / "usr"))
        shutil.rmtree(tmp)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        raise SystemExit(f"unknown archive {archive}")


def _git(tree: Path, *args: str) -> None:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@localhost",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@localhost",
        GIT_AUTHOR_DATE="2026-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
    )
    print("+ git", *args, file=sys.stderr)
    subprocess.run(
        ["git", "-C", str(tree), *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        timeout=3600,
    )


def switch_paths(tree: Path, count: int = SWITCH_FILES) -> list[str]:
    """The ``count`` files the ``switch`` branch changes: .c/.py/.ts sources, spread by hash."""
    out = subprocess.run(
        ["git", "-C", str(tree), "ls-files", "-z", "--", "*.c", "*.py", "*.ts"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    files = [p for p in out.split("\0") if p]
    files.sort(key=lambda p: hashlib.sha1(p.encode()).hexdigest())
    return sorted(files[:count])


def _switch_line(path: str, n: int) -> str:
    if path.endswith(".py"):
        return f"\n\ndef rlm_bench_switch_{n}():\n    return {n}\n"
    if path.endswith(".ts"):
        return f"\nexport function rlmBenchSwitch{n}(): number {{ return {n}; }}\n"
    return f"\nint rlm_bench_switch_{n}(void) {{ return {n}; }}\n"


def build(cache: Path = CACHE) -> Path:
    tree = cache / "tree"
    if (tree / READY).exists():
        return tree
    archives = _download(cache / "downloads")
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for archive in archives:
        stem = archive.name
        for suffix in (".tar.gz", ".tgz", ".zip", ".deb"):
            stem = stem.removesuffix(suffix)
        _unpack(archive, tree / stem)
    _git(tree, "init", "-q", "-b", "main")
    _git(tree, "config", "core.autocrlf", "false")
    _git(tree, "add", "-A", "-f", ".")
    _git(tree, "commit", "-q", "-m", "monorepo corpus")
    _git(tree, "checkout", "-q", "-b", SWITCH_BRANCH)
    for n, rel in enumerate(switch_paths(tree)):
        with open(tree / rel, "a", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(_switch_line(rel, n))
    _git(tree, "commit", "-q", "-a", "-m", f"touch {SWITCH_FILES} files")
    _git(tree, "checkout", "-q", "main")
    (tree / ".git" / "info" / "exclude").write_text(READY + "\n")
    (tree / READY).write_text("ok\n")
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    print(build(args.cache))


if __name__ == "__main__":
    main()
