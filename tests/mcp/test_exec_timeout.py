"""One exec timeout, honoured alike by rlm_query's REPL and rlm_exec (it was 30 s in rlm_query)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.client import Client

from rlm_mcp.budget import Limits
from rlm_mcp.server import create_server
from rlm_mcp.service import RlmService
from rlm_mcp.testing import LoopbackLLMServer
from tests.llm_script import Script, code, last_user


def _settings(tmp_path: Path, workspace: Path, llm: LoopbackLLMServer) -> Any:
    from rlm_mcp.config import IndexSettings, ModelEndpoint, Settings

    return Settings(
        index=IndexSettings(cache_dir=tmp_path / "cache", watch=False),
        root_model=ModelEndpoint(model="root-model", base_url=llm.base_url, max_retries=0),
        allowed_roots=(workspace,),
        trajectory_dir=None,
    )


SLOW = "import time\nfor _ in range(40):\n    time.sleep(0.1)\nprint('finished sleeping')"


async def test_a_one_second_exec_timeout_applies_to_rlm_query_and_rlm_exec(
    tmp_path: Path, workspace: Path, llm: LoopbackLLMServer
) -> None:
    settings = _settings(tmp_path, workspace, llm)
    server = create_server(
        settings,
        service_factory=lambda: RlmService(settings, limits=Limits(exec_timeout_seconds=1)),
    )
    script = Script([code(SLOW), code('FINAL("gave up waiting")')])
    llm.responder = script
    async with Client(server) as client:
        await client.call_tool("rlm_load", {"path": str(workspace / "alpha")})
        result = await client.call_tool("rlm_query", {"question": "Wait four seconds?"})
        assert not result.is_error, result.content
        told = last_user(script.root_bodies[1])
        assert "finished sleeping" not in told
        assert "timed out" in told.lower() or "timeouterror" in told.lower()

        direct = await client.call_tool("rlm_exec", {"code": SLOW})
        out: dict[str, Any] = direct.structured_content or {}
        assert out["timed_out"] is True
        assert "finished sleeping" not in out["stdout"]
