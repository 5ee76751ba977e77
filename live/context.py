"""What the live feed needs of a subscription's GraphQL context.

resolvers.context.Context provides it; live/ names only this protocol, so that
dependencies point one way (resolvers -> live) while the Services object can carry the
live feed.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from db.accounts import Viewer
from db.engine import Database


class StatusLoaders(Protocol):
    """The loaders behind a delivery's icon: the deliveries of its comment or task."""

    @property
    def comment_deliveries(self) -> DataLoader[uuid.UUID, list[Any]]: ...

    @property
    def task_deliveries(self) -> DataLoader[uuid.UUID, list[Any]]: ...


class LiveContext(Protocol):
    # Cleared by the copy shared_context makes: a shared update answers no one request.
    response: Any

    @property
    def db(self) -> Database: ...

    @property
    def loaders(self) -> StatusLoaders: ...

    def reset_loaders(self) -> None: ...

    def require_viewer(self) -> Viewer: ...

    async def tracking_allowed(self) -> bool: ...

    async def history_cutoff(self) -> dt.datetime: ...


C = TypeVar("C", bound=LiveContext)


def shared_context(context: C) -> C:
    """A context like `context` (same services, viewer, connection) with fresh loaders
    and no response of its own."""
    shared = copy.copy(context)
    shared.response = None
    shared.reset_loaders()
    return shared
