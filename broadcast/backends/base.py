"""What every broadcast backend of ours adds to broadcaster's interface."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from broadcaster import BroadcastBackend

# How often an idle listening connection is checked, and how long a check may take.
KEEPALIVE_SECONDS = 5.0
# How our connections name themselves to the server (pg_stat_activity, CLIENT LIST).
CLIENT_NAME = "beacon-broadcast"


def connection_name() -> str:
    """This backend's listening connection, told apart from other processes' ones."""
    return f"{CLIENT_NAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ConnectionLost(Exception):
    """The listening connection is gone; messages published meanwhile are lost."""


class ReconnectingBackend(BroadcastBackend):
    """broadcaster's backend interface, plus `reconnect`."""

    scheme = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = connection_name()

    async def reconnect(self, channels: Sequence[str]) -> None:
        raise NotImplementedError
