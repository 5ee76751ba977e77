"""Local stand-ins for the messenger providers, speaking each one's documented API subset
and sending signed callbacks the way the provider does. Each module's docstring lists
which address gets which answer."""

from tests.support.providers.network import SilentServer, refused_port
from tests.support.providers.server import LocalServer, RecordedRequest
from tests.support.providers.telegram import TelegramEmulator
from tests.support.providers.twilio import TwilioEmulator
from tests.support.providers.webhook_receiver import WebhookReceiver
from tests.support.providers.whatsapp import WhatsAppEmulator, WhatsAppError

__all__ = [
    "LocalServer",
    "RecordedRequest",
    "SilentServer",
    "TelegramEmulator",
    "TwilioEmulator",
    "WebhookReceiver",
    "WhatsAppEmulator",
    "WhatsAppError",
    "refused_port",
]
