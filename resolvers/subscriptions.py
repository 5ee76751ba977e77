"""`deliveryUpdated`: the broadcast says which delivery changed; the database says how."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from broadcaster._base import Unsubscribed
from sqlalchemy.engine import Row

from common.events import DeliveryChanged, account_channel
from db import deliveries as db_deliveries
from resolvers import feed
from resolvers.context import Info, parse_id
from resolvers.errors import not_found


@dataclass(frozen=True)
class Update:
    delivery: Row[Any]
    status_rows: list[Row[Any]]


async def delivery_updates(info: Info, task_id: str | None) -> AsyncIterator[Update]:
    viewer = info.context.require_viewer()
    wanted: uuid.UUID | None = None
    if task_id is not None:
        wanted = parse_id(task_id, "task")
        if await info.context.loaders.task.load(wanted) is None:
            raise not_found("task")
    broadcast = info.context.services.broadcast
    async with broadcast.subscribe(account_channel(viewer.account_id)) as subscriber:
        while True:
            try:
                event = await subscriber.get()
            except Unsubscribed:
                return
            change = DeliveryChanged.decode(event.message)
            # The channel is per account already; the check guards against a bad publisher.
            if change.account_id != viewer.account_id:
                continue
            if wanted is not None and change.task_id != wanted:
                continue
            info.context.reset_loaders()
            if not await info.context.tracking_allowed():
                continue
            async with info.context.db.read() as conn:
                row = await db_deliveries.get_delivery(conn, viewer.account_id, change.delivery_id)
            if row is None:
                continue
            yield Update(delivery=row, status_rows=await feed.status_rows_for(info, row))
