"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary directory.

The server listens only on a Unix socket inside its own directory (no TCP),
trusts local connections, and runs as an unprivileged user when the tests run
as root (``nobody``; PostgreSQL refuses to run as root). One cluster serves a
whole test session: :func:`shared` starts it on first use and stops it
(``pg_ctl stop -m immediate``) when the interpreter exits. Each test keeps to
its own data by using its own repository identity (see ``PostgresStore``).

When no PostgreSQL binaries are installed, :func:`shared` skips the calling
test with the reason; ``.ci/run`` installs them, so in CI these tests run.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from rlm_mcp.index.store.postgres.store import PostgresStore
from tests.polling import poll

__all__ = ["Cluster", "pg_bin", "pg_cluster", "postgres_store", "private", "shared"]

_SUPERUSER = "rlm"
_RUN_AS = "nobody"


def pg_bin() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``, or ``None`` when not installed."""
    env = os.environ.get("RLM_TEST_PG_BIN")
    if env == "none":  # run the suite as on a machine without PostgreSQL
        return None
    if env and Path(env, "initdb").exists():
        return Path(env)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    if found and Path(found).resolve().parent.joinpath("pg_ctl").exists():
        return Path(found).resolve().parent
    return None


class Cluster:
    """One running PostgreSQL server in a temporary directory."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="rlm-pg-"))
        self.data = self.dir / "data"
        self._user: str | None = _RUN_AS if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.dir, user=self._user)
            os.chmod(self.dir, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", _SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        conf = (
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{self.dir}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 300\nshared_buffers = 64MB\n"
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write(conf)
        self.start()
        self._reaper()

    def _reaper(self) -> None:
        """A detached shell that stops the server and removes it if this process dies.

        atexit does not run when the test process is killed (a hard timeout, an
        interrupted CI job); the server would outlive it.
        """
        ctl = self.bindir / "pg_ctl"
        as_user = f"runuser -u {self._user} -- " if self._user else ""
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{as_user}{ctl} -D {self.data} -m immediate stop >/dev/null 2>&1; "
            f"rm -rf {self.dir}"
        )
        self._reaper_proc = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        """A libpq URL for the superuser over the Unix socket."""
        return f"postgresql://{_SUPERUSER}@/postgres?host={quote(str(self.dir), safe='')}"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / tool), *args],
            user=self._user,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def ready(self, timeout: float = 30.0) -> bool:
        def accepting() -> bool:
            r = self._run("pg_isready", "-h", str(self.dir), "-U", _SUPERUSER, check=False)
            return r.returncode == 0

        return poll(accepting, timeout, interval=0.05)

    def destroy(self) -> None:
        """Stop the server and remove its directory; a second call does nothing."""
        if self.dir.exists():
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)
        reaper = getattr(self, "_reaper_proc", None)
        if reaper is not None and reaper.poll() is None:
            reaper.kill()
            reaper.wait()


_shared: Cluster | None = None
_shared_lock = threading.Lock()


def shared() -> Cluster:
    """The session's cluster, started on first use; skips the test when PostgreSQL is absent."""
    global _shared
    with _shared_lock:
        if _shared is None:
            bindir = pg_bin()
            if bindir is None:
                pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs it")
            try:
                _shared = Cluster(bindir)
            except subprocess.CalledProcessError as exc:
                pytest.fail(f"could not start a PostgreSQL test cluster: {exc.stderr or exc}")
            atexit.register(_shared.destroy)
        return _shared


def postgres_store(tmp: Path) -> PostgresStore:
    """A :class:`PostgresStore` on the shared cluster, private to one test (its own identity)."""
    return PostgresStore(shared().url, f"test:{tmp}")


def private() -> Cluster:
    """A cluster of the calling test's own (to restart or stop); the caller destroys it."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs it")
    return Cluster(bindir)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's cluster (see :func:`shared`), stopped when the session ends."""
    cluster = shared()
    try:
        yield cluster
    finally:
        global _shared
        with _shared_lock:
            if _shared is cluster:
                _shared = None
        cluster.destroy()
