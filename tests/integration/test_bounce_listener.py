"""The SMTP listener at the VERP return path (inbound/bounce_listener.py), in this process,
on SQLite and PostgreSQL: a bounce proves itself by the MAC of the token in the address
it is sent to, or is refused before its data is taken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from broadcaster import Broadcast

from channels.email.bounce import parse_bounce
from channels.email.verp import verp_address
from common.domain import DeliveryState
from common.tokens import BOUNCE, sign
from db.engine import Database
from db.suppressions import list_suppressions
from db.tables import bounces
from inbound.bounce_listener import BounceListener
from tests.integration.test_bounces import KEY, sent_delivery_for
from tests.support.builders import count_rows, delivery, message_of

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


@pytest.fixture
async def listener(db: Database) -> AsyncIterator[BounceListener]:
    async with (
        Broadcast("memory://") as broadcast,
        BounceListener(db, broadcast, KEY, host="127.0.0.1", port=0) as listener,
    ):
        yield listener


def hard_bounce_to(return_path: str) -> bytes:
    """A real Postfix hard bounce (bob@example.test, 5.1.1), sent back to `return_path`."""
    raw = (SAMPLES / "postfix_hard_5.1.1.eml").read_bytes()
    token = parse_bounce(raw).verp_token
    assert token is not None
    return raw.replace(f"bounces+{token}@bounces.beacon.test".encode(), return_path.encode())


async def test_a_bounce_to_a_return_path_we_signed_is_applied(
    db: Database, listener: BounceListener
) -> None:
    # given: a SENT delivery and the return path its email carried
    _, delivery_id, token = await sent_delivery_for(db, "bob@example.test")
    return_path = verp_address(token, "bounces.beacon.test")

    # when
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port) as smtp:
        await smtp.sendmail("", [return_path], hard_bounce_to(return_path))

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.error_code) == (DeliveryState.FAILED.value, "5.1.1")
    assert await count_rows(db, bounces) == 1


async def test_a_bounce_to_a_return_path_with_a_forged_mac_is_refused_and_changes_nothing(
    db: Database, listener: BounceListener
) -> None:
    # given: a SENT delivery, and its message id signed with a key that is not ours
    account_id, delivery_id, _ = await sent_delivery_for(db, "bob@example.test")
    message = await message_of(db, delivery_id)
    forged = verp_address(sign(message.id.hex, b"not our key", BOUNCE), "bounces.beacon.test")

    # when
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail("", [forged], hard_bounce_to(forged))

    # then: refused at RCPT TO, before any data; nothing is stored or changed
    assert refused.value.recipients[0].code == 550
    assert (await delivery(db, delivery_id)).state == DeliveryState.SENT.value
    assert await count_rows(db, bounces) == 0
    async with db.read() as conn:
        assert list(await list_suppressions(conn, account_id)) == []
