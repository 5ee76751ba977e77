"""An account's channel credentials (provider tokens), written here and never read back."""

from __future__ import annotations

from db import credentials as db_credentials
from db.records import AccountRecord
from domain.text import one_line
from resolvers.context import Info
from resolvers.errors import bad_input
from resolvers.roles import require_manager

# Longest value a provider hands out for any of these, with room to spare.
MAX_CREDENTIAL = 1000


async def set_channel_credentials(info: Info, given: dict[str, str | None]) -> AccountRecord:
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
