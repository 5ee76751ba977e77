"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from broadcaster import Broadcast


@pytest.fixture
async def broadcast() -> AsyncIterator[Broadcast]:
    """An in-process broadcast (a worker publishes its changes to it); the tests of the
    broadcast itself, across nodes, have their own."""
    async with Broadcast("memory://") as broadcast:
        yield broadcast
