"""The account's own SMTP relay, seen from outside: a tenant cannot point the server at
its own network (SSRF: port scans, banners echoed back), and the relay's password is
write-only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from db.engine import Database
from db.tables import accounts
from tests.e2e.helpers import Beacon
from tests.e2e.test_account_rules import ACCOUNT, settled_status, update_account
from tests.support.graphql_client import GraphQLError
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.e2e

ERROR_OF = """
query Delivery($id: ID!) { delivery(id: $id) { state error { code message permanent } } }
"""


@pytest.fixture
async def internal() -> AsyncIterator[SmtpSink]:
    """A service on the server's own machine, which a tenant must not reach."""
    async with SmtpSink(hostname="internal-banner.corp.test") as sink:
        yield sink


async def stored_relay(db: Database, beacon: Beacon) -> str | None:
    async with db.read() as conn:
        found = await conn.execute(
            sa.select(accounts.c.smtp_relay).where(
                accounts.c.id == uuid.UUID(beacon.account.account_id)
            )
        )
        value: str | None = found.scalar_one()
    return value


async def test_given_a_relay_on_a_private_network_when_it_is_set_or_used_then_it_is_refused_without_a_connection(  # noqa: E501
    beacon: Beacon, internal: SmtpSink, db: Database
) -> None:
    # Given the addresses of private services, in several spellings, and an overlong URL
    refused = [
        f"smtp://127.0.0.1:{internal.port}",
        f"smtp://[::ffff:127.0.0.1]:{internal.port}",
        f"smtp://2130706433:{internal.port}",
        "smtps://169.254.169.254:465",
        f"smtp+starttls://[::1]:{internal.port}",
        "smtp://mail.example.test:25/" + "x" * 600,
        "ftp://files.example.test",
    ]
    for url in refused:
        # When the account's relay is set to one, Then it is refused as bad input
        with pytest.raises(GraphQLError) as raised:
            await update_account(beacon, smtpRelay=url)
        assert raised.value.codes == ["BAD_USER_INPUT"], url
        assert len(raised.value.errors[0]["message"]) < 300
    # And nothing was stored
    assert (await beacon.client.execute(ACCOUNT))["account"]["smtpRelay"] is None
    assert await stored_relay(db, beacon) is None

    # Given a host name (checked when mail is sent, against what it resolves to then)
    await update_account(beacon, smtpRelay=f"smtp://localhost:{internal.port}")
    ann = await beacon.add_contact("Ann", "ann@example.test")

    # When a task is created
    task_id = await beacon.create_task("Ship v2", [ann])

    # Then the delivery fails for good, saying why, without a word of the service's banner
    (delivery,) = (await settled_status(beacon, task_id))["deliveries"]
    error = (await beacon.client.execute(ERROR_OF, {"id": delivery["id"]}))["delivery"]["error"]
    assert error["code"] == "BLOCKED_ADDRESS"
    assert error["permanent"] is True
    assert "non-public address" in error["message"]
    assert "internal-banner" not in error["message"]
    # And the service never saw a connection
    assert internal.connections_opened == 0
    assert beacon.sink.messages == []


async def test_given_a_relay_with_a_password_when_the_account_is_read_then_the_password_is_masked_and_kept(  # noqa: E501
    beacon: Beacon, db: Database
) -> None:
    secret_url = "smtp+starttls://alice%40acme.test:Sup3r-Secret@mail.example.test:2525"
    masked = "smtp+starttls://alice%40acme.test:********@mail.example.test:2525"

    # When the relay is set with a password
    answer = await beacon.client.raw(
        "mutation($url: String) { updateAccount(input: {smtpRelay: $url}) { smtpRelay } }",
        {"url": secret_url},
    )

    # Then neither the answer nor a later read shows it
    assert answer["data"]["updateAccount"]["smtpRelay"] == masked
    read = await beacon.client.raw(ACCOUNT)
    assert read["data"]["account"]["smtpRelay"] == masked
    assert "Sup3r-Secret" not in json.dumps(answer) + json.dumps(read)

    # When a client sends back the masked URL it was shown (a settings form, say)
    account: dict[str, Any] = await update_account(beacon, smtpRelay=masked)

    # Then the password is kept
    assert account["smtpRelay"] == masked
    assert await stored_relay(db, beacon) == secret_url

    # But the mask is no password for another server or login
    for elsewhere in (
        "smtp+starttls://alice%40acme.test:********@other.example.test:2525",
        "smtp+starttls://mallory:********@mail.example.test:2525",
    ):
        with pytest.raises(GraphQLError) as raised:
            await update_account(beacon, smtpRelay=elsewhere)
        assert raised.value.codes == ["BAD_USER_INPUT"]
    assert await stored_relay(db, beacon) == secret_url
