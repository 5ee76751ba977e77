"""Pub/sub between processes: "this account's deliveries changed" goes from whoever
changed them (worker, pixel, callbacks, mutations) to every API process's live feed.

`Broadcast` (facade.py) is broadcaster's, made to survive lost connections; the
backends (backends/) are picked from BROADCAST_URL's scheme, as broadcaster lays them
out. Imports nothing of ours but common/.
"""

from broadcast.facade import (
    Broadcast,
    Event,
    Resync,
    Subscriber,
    create_broadcast,
    publish_changes,
)

__all__ = ["Broadcast", "Event", "Resync", "Subscriber", "create_broadcast", "publish_changes"]
