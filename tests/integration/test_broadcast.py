"""The broadcast across nodes: memory://, Redis and PostgreSQL LISTEN/NOTIFY.

Each test runs on every backend (Redis and PostgreSQL skip locally when they are down,
and fail in CI). Connection-kill tests cut the listening connection from the server's
side, as a restart or a network cut would, and show that subscribers hear later
messages without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis import asyncio as aioredis

from broadcast import Broadcast, Resync, create_broadcast
from broadcast.backends import MemoryBackend, PostgresBackend, RedisBackend
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.redis_service import REDIS_URL, require_redis
from tests.support.services import require_service

POSTGRES_URL = POSTGRES_ADMIN_URL.replace("postgresql://", "postgres://", 1)
WAIT = 10.0


async def _postgres_error() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    await conn.close()
    return None


async def backend_url(kind: str) -> str:
    """The URL of a running backend of this kind (skip or, in CI, fail if it is down)."""
    if kind == "redis":
        return await require_redis()
    if kind == "postgres":
        if (error := await _postgres_error()) is not None:
            require_service("PostgreSQL", error)
        return POSTGRES_URL
    return "memory://"


@pytest.fixture(params=["memory", "redis", "postgres"])
async def broadcast_url(request: pytest.FixtureRequest) -> str:
    return await backend_url(request.param)


@pytest.fixture(params=["redis", "postgres"])
async def networked_url(request: pytest.FixtureRequest) -> str:
    """A backend with a connection that can be lost."""
    return await backend_url(request.param)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Broadcast]:
    # A prefix of its own: parallel runs on one Redis do not hear each other.
    broadcast = create_broadcast(url, prefix=f"t{uuid.uuid4().hex[:8]}.")
    await broadcast.connect()
    try:
        yield broadcast
    finally:
        await broadcast.disconnect()


@pytest.fixture
async def broadcast(broadcast_url: str) -> AsyncIterator[Broadcast]:
    async with connected(broadcast_url) as broadcast:
        yield broadcast


@pytest.fixture
async def networked(networked_url: str) -> AsyncIterator[Broadcast]:
    async with connected(networked_url) as broadcast:
        yield broadcast


def reconnects_counted(backend: str) -> float:
    value = REGISTRY.get_sample_value("beacon_broadcast_reconnects_total", {"backend": backend})
    return value or 0.0


async def kill_listening_connection(broadcast: Broadcast) -> None:
    """Close the subscriber's connection from the server's side."""
    backend = broadcast.backend
    if isinstance(backend, RedisBackend):
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            listing = await client.client_list(_type="pubsub")
            ids = [entry["id"] for entry in listing if entry.get("name") == backend.name]
            assert len(ids) == 1, listing
            # CLIENT KILL ID: only ours, not the pub/sub clients of parallel test runs.
            assert await client.client_kill_filter(_id=ids[0]) == 1
        finally:
            await client.aclose()
    elif isinstance(backend, PostgresBackend):
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FROM ("
                " SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1) AS t",
                backend.name,
            )
            assert killed == 1
        finally:
            await conn.close()
    else:
        raise AssertionError(f"no connection to kill on {backend.scheme}")


async def test_given_a_subscriber_on_each_backend_when_a_message_is_published_then_it_arrives(
    broadcast: Broadcast,
) -> None:
    async with broadcast.subscribe("deliveries") as subscriber:
        # When
        await broadcast.publish("deliveries", "hello")

        # Then
        event = await asyncio.wait_for(subscriber.get(), WAIT)
        assert (event.channel, event.message) == ("deliveries", "hello")


async def test_given_a_subscriber_when_its_connection_is_killed_then_it_is_told_to_resync_and_hears_later_messages(  # noqa: E501
    networked: Broadcast,
) -> None:
    broadcast = networked
    # Given a subscriber that hears messages
    scheme = broadcast.backend.scheme
    counted_before = reconnects_counted(scheme)
    async with (
        broadcast.subscribe("deliveries") as subscriber,
        broadcast.subscribe("other") as other,
    ):
        await broadcast.publish("deliveries", "before")
        assert (await asyncio.wait_for(subscriber.get(), WAIT)).message == "before"

        # When the server drops its connection
        await kill_listening_connection(broadcast)

        # Then each subscriber is told that messages may have been lost
        resync = await asyncio.wait_for(subscriber.get(), WAIT)
        assert isinstance(resync, Resync)
        assert resync.channel == "deliveries"
        assert isinstance(await asyncio.wait_for(other.get(), WAIT), Resync)

        # And hears what is published afterwards, on every channel it had
        await broadcast.publish("deliveries", "after")
        await broadcast.publish("other", "also after")
        assert (await asyncio.wait_for(subscriber.get(), WAIT)).message == "after"
        assert (await asyncio.wait_for(other.get(), WAIT)).message == "also after"

    # And the reconnect is counted, in the process and in /metrics
    assert broadcast.reconnects == 1
    assert reconnects_counted(scheme) == counted_before + 1


async def test_given_a_killed_connection_when_a_new_channel_is_subscribed_after_the_reconnect_then_it_hears_its_messages(  # noqa: E501
    networked: Broadcast,
) -> None:
    broadcast = networked
    # Given a subscriber whose connection was killed and came back
    async with broadcast.subscribe("deliveries") as subscriber:
        await kill_listening_connection(broadcast)
        assert isinstance(await asyncio.wait_for(subscriber.get(), WAIT), Resync)

    # When another channel is subscribed on the new connection
    async with broadcast.subscribe("later") as later:
        await broadcast.publish("later", "hi")

        # Then it hears its messages
        assert (await asyncio.wait_for(later.get(), WAIT)).message == "hi"


async def test_given_two_subscriptions_starting_at_once_on_a_new_channel_when_a_message_is_published_then_both_receive_it(  # noqa: E501
    broadcast: Broadcast,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        # Given two first subscriptions to one channel, concurrently
        first, second = await asyncio.gather(
            stack.enter_async_context(broadcast.subscribe("race")),
            stack.enter_async_context(broadcast.subscribe("race")),
        )

        # When a message is published
        await broadcast.publish("race", "both")

        # Then both hear it
        assert (await asyncio.wait_for(first.get(), WAIT)).message == "both"
        assert (await asyncio.wait_for(second.get(), WAIT)).message == "both"

    # And once both left, the channel is no longer subscribed
    assert "race" not in broadcast._subscribers


class SlowMemoryBackend(MemoryBackend):
    """Subscribing takes a round trip, as on a real server: the window of the race."""

    async def subscribe(self, channel: str) -> None:
        await asyncio.sleep(0.01)
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await asyncio.sleep(0.01)
        await super().unsubscribe(channel)


async def test_given_a_backend_slow_to_subscribe_when_subscriptions_come_and_go_concurrently_then_every_subscriber_hears_every_message() -> (  # noqa: E501
    None
):
    # Given a broadcast whose backend takes a while to (un)subscribe
    broadcast = Broadcast(SlowMemoryBackend("memory://"))
    await broadcast.connect()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # When three subscribe at once, and one of them leaves while another joins
            subscribers = await asyncio.gather(
                *(stack.enter_async_context(broadcast.subscribe("race")) for _ in range(3))
            )
            async with broadcast.subscribe("race") as leaving:
                await broadcast.publish("race", "one")
                assert (await asyncio.wait_for(leaving.get(), WAIT)).message == "one"

            # Then every one still subscribed hears every message, once
            await broadcast.publish("race", "two")
            for subscriber in subscribers:
                assert (await asyncio.wait_for(subscriber.get(), WAIT)).message == "one"
                assert (await asyncio.wait_for(subscriber.get(), WAIT)).message == "two"
                assert subscriber._queue.empty()
    finally:
        await broadcast.disconnect()


def test_given_a_prefix_too_long_for_postgresql_channel_names_when_the_broadcast_is_made_then_it_is_refused() -> (  # noqa: E501
    None
):
    # A LISTEN channel is an identifier: at most 63 bytes, prefix included
    create_broadcast(POSTGRES_URL, prefix="s0123abcd.")
    with pytest.raises(ValueError, match="BROADCAST_PREFIX"):
        create_broadcast(POSTGRES_URL, prefix="deployment-eu-west-1.")
    # Redis has no such limit
    create_broadcast(REDIS_URL, prefix="deployment-eu-west-1.")
