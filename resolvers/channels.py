"""Channel settings of an account, and reading in-app notifications."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Row

from common.broadcast import publish_changes
from common.domain import Channel, DeliveryState
from db import credentials as db_credentials
from db import deliveries as db_deliveries
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, forbidden, not_found
from resolvers.roles import require_manager
from resolvers.text import one_line

# Longest value a provider hands out for any of these, with room to spare.
MAX_CREDENTIAL = 1000


async def set_channel_credentials(info: Info, given: dict[str, str | None]) -> Row[Any]:
    """Set the fields given; an empty string or null clears one. Never echoed back."""
    viewer = require_manager(info, "Setting channel credentials")
    values: dict[str, str | None] = {}
    for name, value in given.items():
        cleaned = one_line(value or "", name).strip() or None
        if cleaned is not None and len(cleaned) > MAX_CREDENTIAL:
            raise bad_input(f"'{name}' is longer than {MAX_CREDENTIAL} characters.", field=name)
        values[name] = cleaned
    phone_number_id = values.get("whatsapp_phone_number_id")
    async with info.context.db.write() as conn:
        if phone_number_id is not None:
            owner = await db_credentials.account_for_whatsapp(conn, phone_number_id)
            if owner is not None and owner[0] != viewer.account_id:
                # Callbacks find the account by this id: it must name one account only.
                raise bad_input(
                    "This WhatsApp phone number id belongs to another account.",
                    field="whatsappPhoneNumberId",
                )
        await db_credentials.set_credentials(conn, viewer.account_id, values)
    info.context.reset_loaders()
    return await info.context.account()


async def mark_read(info: Info, delivery_id: str) -> Row[Any]:
    """The viewer read one of their in-app notifications."""
    viewer = info.context.require_viewer()
    parsed = parse_id(delivery_id, "delivery")
    now = dt.datetime.now(dt.UTC)
    async with info.context.db.write() as conn:
        row = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
        if row is None:
            raise not_found("delivery")
        if row.channel != Channel.IN_APP.value:
            raise bad_input("Only in-app notifications are marked read.", field="deliveryId")
        if row.recipient_id != viewer.person_id:
            raise forbidden("Only the recipient marks a notification read.")
        moved = await db_deliveries.transition(
            conn,
            [row.id],
            DeliveryState.READ,
            {"read_at": now, "sent_at": row.sent_at or now},
        )
        if moved:
            await db_deliveries.add_event(conn, [row.id], "read", now)
        updated = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
    assert updated is not None
    if moved:
        await publish_changes(info.context.services.broadcast, [db_deliveries.change_of(updated)])
    return updated
