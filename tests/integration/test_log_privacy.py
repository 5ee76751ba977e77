"""Recipient addresses are personal data: at INFO level the log names none of them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from channels.email.bounce import parse_bounce
from common.tokens import BOUNCE, sign
from db.engine import Database
from inbound.bounces import record_bounce
from tests.support.builders import SECRET_KEY

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "bounces" / "postfix_hard_5.1.1.eml"


async def test_a_bounce_naming_no_message_of_ours_is_logged_without_its_addresses(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a bounce whose VERP token names a message this database does not have
    raw = SAMPLE.read_bytes()
    report = parse_bounce(raw)
    assert report.verp_token is not None
    raw = raw.replace(
        report.verp_token.encode(), sign("0" * 32, SECRET_KEY.encode(), BOUNCE).encode()
    )
    addresses = [status.address for status in report.recipients]
    assert addresses
    assert any(address in report.summary for address in addresses)

    # when
    caplog.set_level(logging.INFO, logger="inbound.bounces")
    await record_bounce(db, SECRET_KEY.encode(), raw, source="http")

    # then: the line is there, the addresses are not
    lines = [record.getMessage() for record in caplog.records if record.name == "inbound.bounces"]
    assert [line for line in lines if "names no message of ours" in line]
    assert not [line for line in lines for address in addresses if address in line]
