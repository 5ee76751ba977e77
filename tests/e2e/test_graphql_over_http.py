"""The server passes the graphql-http audit of the GraphQL-over-HTTP specification."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.support.services import require_service

pytestmark = pytest.mark.e2e

AUDIT_DIR = Path(__file__).parent / "http_audit"


async def test_the_server_passes_every_graphql_over_http_audit_check(tmp_path: Path) -> None:
    # given
    node = shutil.which("node")
    if node is None or not (AUDIT_DIR / "node_modules" / "graphql-http").exists():
        require_service("node with graphql-http", "run `make test` (it runs npm ci)")
    async with ServerProcess(tmp_path / "data") as server:
        # when
        process = await asyncio.create_subprocess_exec(
            node,
            str(AUDIT_DIR / "audit.mjs"),
            f"{server.base_url}/graphql",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    # then
    assert process.returncode == 0, stderr.decode()
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["warnings"] == []
    assert report["ok"] == report["total"] > 50
