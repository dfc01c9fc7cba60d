"""An independent peer: the official TypeScript SDK client against ``rlm-mcp serve`` over stdio.

Needs Node.js (skipped without it). Dependencies are pinned by
``tests/mcp/peer/package-lock.json``; CI runs ``npm ci`` there, and the test
runs it itself when ``node_modules`` is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mcp.serve_helpers import SERVE, full_env, server_env, write_sample

PEER = Path(__file__).parent / "peer"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="Node.js is not installed")


def _ensure_sdk() -> None:
    if (PEER / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        return
    assert NPM is not None
    subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund"],
        cwd=PEER,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_typescript_sdk_client_lists_tools_loads_and_searches(tmp_path: Path) -> None:
    _ensure_sdk()
    assert NODE is not None
    repo = write_sample(tmp_path / "shapes")
    proc = subprocess.run(
        [NODE, str(PEER / "peer_client.mjs"), str(repo), *SERVE],
        cwd=PEER,
        env=full_env(server_env(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["server"]["name"] == "rlm-mcp"
    assert out["tools"][:4] == ["rlm_load", "rlm_query", "rlm_find", "rlm_search"]
    assert not out["loadError"]
    assert out["load"]["name"] == "shapes"
    assert out["search"]["hits"] == ["pkg/geometry.py:5:    def area(self):"]
    assert out["badIsError"] is True
