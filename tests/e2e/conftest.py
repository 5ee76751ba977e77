"""End-to-end fixtures: the real server (`python main.py serve`) on the test's database,
sending to a real SMTP server (the sink), with an account as the CLI makes it.

`beacon` depends on `database_url`, so every test that uses it runs on SQLite and on
PostgreSQL. A test picks the account's plan with `@pytest.mark.parametrize("plan",
["FREE"])` and adds server settings with `@pytest.mark.parametrize("server_env",
[{"SEND_MAX_ATTEMPTS": "2"}])`: direct parametrisation overrides these fixtures.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Beacon, GatedSmtpSink, create_account_directly
from tests.support.graphql_client import GraphQLClient
from tests.support.server import ServerProcess


@pytest.fixture
async def smtp_sink() -> AsyncIterator[GatedSmtpSink]:
    """The shared sink's answers (250, or 550/451 by local part), plus a gate."""
    async with GatedSmtpSink() as sink:
        yield sink


@pytest.fixture
def plan() -> str:
    """The plan of the `beacon` account."""
    return "PREMIUM"


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server."""
    return {}


@pytest.fixture
async def beacon(
    database_url: str,
    smtp_sink: GatedSmtpSink,
    tmp_path: Path,
    plan: str,
    server_env: dict[str, str],
) -> AsyncIterator[Beacon]:
    server = ServerProcess(
        tmp_path / "server",
        {"DATABASE_URL": database_url, "SMTP_URL": smtp_sink.url, **server_env},
    )
    try:
        # The account is written while the server starts; on SQLite the server may then
        # also create its demo account, which no test sees.
        async with asyncio.TaskGroup() as group:
            created = group.create_task(
                create_account_directly(
                    database_url, name="Acme", plan=plan, email="owner@acme.test"
                )
            )
            group.create_task(server.start())
        beacon = Beacon(
            server=server,
            sink=smtp_sink,
            account=created.result(),
            client=GraphQLClient(server.base_url, created.result().token),
        )
        try:
            yield beacon
        finally:
            await beacon.close()
    finally:
        await server.stop()
        # Captured by pytest and shown only when the test fails: the server's side.
        sys.stderr.write(f"----- server log ({server.base_url}) -----\n{server.log}\n")
