"""Waiting for state held by another process or the database, when there is no event to
await."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from db.engine import Database

T = TypeVar("T")

# How long one wait may take before it counts as a failure.
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05


async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = WAIT_SECONDS,
    interval: float = POLL_SECONDS,
) -> T:
    """Call `check` until it returns without an AssertionError, and return its value.

    Bounded: after `timeout` the last AssertionError propagates.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if loop.time() >= deadline:
                raise
        # Polling another process: the interval bounds the wait, it orders nothing.
        await asyncio.sleep(interval)


_WAITING_ON_A_LOCK = sa.text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def sessions_waiting_on_a_lock(db: Database, expected: int = 1) -> None:
    """Passes when `expected` sessions of this PostgreSQL database wait for a lock: for
    `eventually`, to know a concurrent transaction has reached the row another holds."""
    async with db.read() as conn:
        waiting = (await conn.execute(_WAITING_ON_A_LOCK)).scalar_one()
    assert waiting == expected
