"""``serve --transport http`` binds before it announces; a busy port is one line and exit 3."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.cli_helpers import isolated_env, run_cli
from tests.polling import poll


def test_a_busy_port_is_one_line_and_exit_3_without_announcing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli(
            "serve", "--transport", "http", "--port", str(port), env=isolated_env(tmp_path)
        )
    assert proc.returncode == 3
    assert proc.stderr == (
        f"rlm-mcp: error: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another server is listening there; pick another --port)\n"
    )
    assert proc.stdout == ""


def test_a_public_address_without_a_token_exits_2_without_announcing(tmp_path: Path) -> None:
    proc = run_cli("serve", "--transport", "http", "--host", "0.0.0.0", env=isolated_env(tmp_path))
    assert proc.returncode == 2
    assert "refusing to serve HTTP on 0.0.0.0 without authentication" in proc.stderr
    assert "serving" not in proc.stderr


def test_the_address_is_announced_only_once_the_port_accepts_connections(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", "serve", "--transport", "http", "--port", "0"],
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        stderr = proc.stderr

        def announced() -> str:
            ready, _, _ = select.select([stderr], [], [], 0.5)
            return stderr.readline() if ready else ""

        line = poll(announced, 60, interval=0)
        match = re.fullmatch(
            r"rlm-mcp: serving MCP over Streamable HTTP at http://127\.0\.0\.1:(\d+)/mcp\n", line
        )
        assert match, line
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5):
            pass
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    assert proc.returncode in (0, 130)
