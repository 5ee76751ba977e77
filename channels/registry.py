"""The explicit registry of messenger channels: one instance of each, built from settings.

Email is not here: it sends one message to many recipients through its own sender
(channels/email/sender.py), not one notice to one address.
"""

from __future__ import annotations

from channels.base import MessengerChannel
from channels.in_app import InAppChannel
from channels.sms import TwilioSmsChannel
from channels.telegram import TelegramChannel
from channels.webhook import WebhookChannel
from channels.whatsapp import WhatsAppChannel
from common.domain import Channel
from common.settings import Settings


def messenger_channels(settings: Settings) -> dict[Channel, MessengerChannel]:
    timeout = settings.http_timeout_seconds
    return {
        Channel.TELEGRAM: TelegramChannel(settings.telegram_api_url, timeout=timeout),
        Channel.WHATSAPP: WhatsAppChannel(settings.whatsapp_api_url, timeout=timeout),
        Channel.SMS: TwilioSmsChannel(
            settings.twilio_api_url,
            timeout=timeout,
            # The route that verifies Twilio's signature over this exact URL.
            status_callback_url=f"{settings.public_base_url}/callbacks/sms",
        ),
        Channel.WEBHOOK: WebhookChannel(
            timeout=timeout, allow_private=settings.allow_private_networks
        ),
        Channel.IN_APP: InAppChannel(),
    }
