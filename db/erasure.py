"""Erasing a person (deletePerson): nothing of theirs is left but a placeholder.

The person's row stays, emptied, as the recipient of their past deliveries (so that
delivery history and its counts stay whole); each of those deliveries' address becomes
`placeholder(person)`, their events keep their times. Every other place that held one
of their addresses (event details, bounces, suppressions, system comments) has it
replaced by the placeholder, or is deleted when it was only about them (tokens,
invitations, subscriptions, scenarios that emailed them). Addresses are matched as
stored and lower-cased (mail servers lower-case them in bounces).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.accounts import ADDRESS_COLUMNS
from db.records import PersonRecord
from db.tables import (
    api_tokens,
    bounces,
    comments,
    deliveries,
    delivery_events,
    invitations,
    people,
    scenarios,
    suppressions,
    task_subscribers,
    webhook_attempts,
    webhook_endpoints,
    webhook_events,
)

ERASED_NAME = "Erased person"


def placeholder(person_id: uuid.UUID) -> str:
    """Stable per person: their deliveries still group as one recipient's."""
    return f"erased-{person_id.hex}"


async def erase_person(
    conn: AsyncConnection, person: PersonRecord, now: dt.datetime
) -> list[uuid.UUID]:
    """Erase the person (read by the caller in this transaction, not erased yet); their
    token ids, to close their websockets."""
    account_id, person_id = person.account_id, person.id
    stand_in = placeholder(person_id)
    addresses = _spellings([getattr(person, column) for column in ADDRESS_COLUMNS])
    token_ids = list(
        (
            await conn.execute(
                sa.select(api_tokens.c.id).where(api_tokens.c.person_id == person_id)
            )
        ).scalars()
    )
    for table in (api_tokens, invitations, task_subscribers, scenarios):
        await conn.execute(table.delete().where(table.c.person_id == person_id))
    await conn.execute(
        deliveries.update().where(deliveries.c.recipient_id == person_id).values(address=stand_in)
    )
    accounts_deliveries = sa.select(deliveries.c.id).where(deliveries.c.account_id == account_id)
    accounts_endpoints = sa.select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.account_id == account_id
    )
    for column, scope in (
        (delivery_events.c.detail, delivery_events.c.delivery_id.in_(accounts_deliveries)),
        (deliveries.c.error_message, deliveries.c.account_id == account_id),
        (comments.c.body, comments.c.account_id == account_id),
        (bounces.c.summary, _accounts_bounces(account_id)),
        # Status webhooks copy a delivery's error, and a receiver may echo the event.
        (webhook_events.c.error_message, webhook_events.c.endpoint_id.in_(accounts_endpoints)),
        (webhook_attempts.c.response, webhook_attempts.c.endpoint_id.in_(accounts_endpoints)),
        (webhook_attempts.c.error, webhook_attempts.c.endpoint_id.in_(accounts_endpoints)),
    ):
        if not addresses:
            break
        mentions = sa.or_(*(column.contains(address, autoescape=True) for address in addresses))
        await conn.execute(
            sa.update(column.table)
            .where(scope, mentions)
            .values({column.name: _scrubbed(column, addresses, stand_in)})
        )
    await _scrub_raw_bounces(conn, account_id, addresses, stand_in)
    if addresses:
        await conn.execute(
            suppressions.delete().where(
                suppressions.c.account_id == account_id,
                sa.func.lower(suppressions.c.address).in_([a.lower() for a in addresses]),
            )
        )
    await conn.execute(
        people.update()
        .where(people.c.id == person_id)
        .values(
            name=ERASED_NAME,
            kind="CONTACT",
            role=None,
            disabled_channels=[],
            tracking_consent="UNKNOWN",
            erased_at=now,
            **dict.fromkeys(ADDRESS_COLUMNS),
        )
    )
    return token_ids


def _accounts_bounces(account_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """The account's bounces, and those no account could be found for."""
    return sa.or_(bounces.c.account_id == account_id, bounces.c.account_id.is_(None))


def _spellings(values: Sequence[str | None]) -> list[str]:
    found: dict[str, None] = {}
    for value in values:
        if value:
            found[value] = None
            found[value.lower()] = None
    return list(found)


def _scrubbed(
    column: sa.ColumnElement[str], addresses: Sequence[str], stand_in: str
) -> sa.ColumnElement[str]:
    """The column's text with every spelling of the addresses replaced (SQL replace(),
    which both databases have)."""
    expression: sa.ColumnElement[str] = column
    for address in addresses:
        expression = sa.func.replace(expression, address, stand_in)
    return expression


async def _scrub_raw_bounces(
    conn: AsyncConnection, account_id: uuid.UUID, addresses: Sequence[str], stand_in: str
) -> None:
    """Bounces keep the raw message (bytes): scrubbed here, case-insensitively, for the
    account's bounces and those no account could be found for."""
    if not addresses:
        return
    pattern = re.compile(
        b"|".join(re.escape(address.encode()) for address in addresses), re.IGNORECASE
    )
    rows = (
        await conn.execute(
            sa.select(bounces.c.id, bounces.c.raw).where(_accounts_bounces(account_id))
        )
    ).all()
    for row in rows:
        raw = bytes(row.raw)
        cleaned = pattern.sub(stand_in.encode(), raw)
        if cleaned != raw:
            await conn.execute(bounces.update().where(bounces.c.id == row.id).values(raw=cleaned))
