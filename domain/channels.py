"""Which channels an account can send on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel
from db import credentials as db_credentials


def channels_configured(credentials: Mapping[str, str | None]) -> frozenset[Channel]:
    """Email, webhooks and in-app need no provider account; a messenger needs every
    credential its provider asks for."""
    channels = {Channel.EMAIL, Channel.WEBHOOK, Channel.IN_APP}
    if credentials.get("telegram_bot_token"):
        channels.add(Channel.TELEGRAM)
    if credentials.get("whatsapp_phone_number_id") and credentials.get("whatsapp_access_token"):
        channels.add(Channel.WHATSAPP)
    if all(
        credentials.get(name)
        for name in ("twilio_account_sid", "twilio_auth_token", "twilio_from_number")
    ):
        channels.add(Channel.SMS)
    return frozenset(channels)


async def configured_channels(conn: AsyncConnection, account_id: uuid.UUID) -> frozenset[Channel]:
    """The channels this account can send on, from its stored credentials."""
    return channels_configured(await db_credentials.get_credentials(conn, account_id))
