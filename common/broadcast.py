"""The process's broadcaster: picked from BROADCAST_URL, shared by publishers and
subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from broadcaster import Broadcast

from common.events import DeliveryChanged

log = logging.getLogger(__name__)


def create_broadcast(url: str) -> Broadcast:
    return Broadcast(url)


async def publish_changes(broadcast: Broadcast, changes: Iterable[DeliveryChanged]) -> None:
    """Publish after the commit. A failed publish is logged, not raised: the database
    already holds the truth and clients repair from it on their next read."""
    for change in changes:
        try:
            await broadcast.publish(channel=change.channel, message=change.encode())
        except Exception:
            log.exception("could not publish a delivery change")
