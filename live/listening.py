"""One way to follow a broadcast channel for as long as a process runs: subscribe, say
so, and hand every event to a handler (the live feed's doorbells, revoked tokens)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from broadcaster import Broadcast, Event
from broadcaster._base import Unsubscribed


async def listen(
    broadcast: Broadcast,
    channel: str,
    subscribed: asyncio.Future[None],
    on_event: Callable[[Event], Awaitable[None]],
) -> None:
    """Until cancelled or the broadcast disconnects. `subscribed` resolves once events
    are heard, or carries the error when subscribing fails, so whoever waits on it
    learns either way."""
    try:
        async with broadcast.subscribe(channel) as subscriber:
            subscribed.set_result(None)
            while True:
                await on_event(await subscriber.get())
    except Unsubscribed:
        return
    except Exception as error:
        if not subscribed.done():
            subscribed.set_exception(error)
        raise
