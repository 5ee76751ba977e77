"""The in-app channel: the notification is shown in Beacon itself.

Storing the delivery is the whole of sending it, so it is accepted at once; it becomes
READ when the person marks it read (`markRead`).
"""

from __future__ import annotations

from channels.base import ChannelCredentials, Notice, Outcome, RecipientResult
from common.domain import Channel


class InAppChannel:
    channel: Channel = Channel.IN_APP

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        return RecipientResult(
            notice.address,
            Outcome.ACCEPTED,
            "STORED",
            "stored for the in-app inbox",
            accepted_by="in-app",
        )

    async def aclose(self) -> None:
        return None
