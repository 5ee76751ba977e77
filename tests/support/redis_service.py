"""Redis for tests (127.0.0.1:6379, or TEST_REDIS_URL): a skip locally when it is down,
a failure in CI."""

from __future__ import annotations

import os
from typing import Any, cast

from redis import asyncio as aioredis

from tests.support.services import require_service

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def redis_error() -> str | None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await cast(Any, client.ping())
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await client.aclose()
    return None


async def require_redis() -> str:
    """The Redis URL, once Redis answers."""
    if (error := await redis_error()) is not None:
        require_service("Redis", error)
    return REDIS_URL
