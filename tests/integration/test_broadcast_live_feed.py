"""The live feed behind `deliveryUpdated`: the broadcast rings, the delivery event log
says what changed. On SQLite and PostgreSQL, over the memory broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import Request

from broadcast import Broadcast, create_broadcast, publish_changes
from common.domain import Plan
from db.accounts import Viewer
from db.deliveries import add_event
from db.engine import Database
from live.feed import Listener, LiveFeed
from live.positions import Position
from live.resume import replay
from live.updates import LiveUpdate
from resolvers.context import Context, Services
from tests.support.builders import (
    T0,
    Scenario,
    add_comment,
    commented_task,
    make_settings,
)

WAIT = 10.0


@pytest.fixture
async def broadcast() -> AsyncIterator[Broadcast]:
    connected = create_broadcast("memory://")
    await connected.connect()
    try:
        yield connected
    finally:
        await connected.disconnect()


@contextlib.asynccontextmanager
async def running_feed(
    db: Database, broadcast: Broadcast, *, poll_seconds: float = 60.0
) -> AsyncIterator[LiveFeed]:
    feed = LiveFeed(db, broadcast, poll_seconds=poll_seconds)
    try:
        yield feed
    finally:
        await feed.aclose()


def context_for(db: Database, broadcast: Broadcast, scenario: Scenario, tmp_path: Path) -> Context:
    services = Services(
        db=db,
        broadcast=broadcast,
        settings=make_settings(tmp_path),
        wake_worker=lambda: None,
        live=LiveFeed(db, broadcast),
    )
    viewer = Viewer(account_id=scenario.account_id, person_id=scenario.account.owner_id)
    return Context(
        services=services,
        request=Request({"type": "http", "headers": []}),
        response=None,
        viewer=viewer,
    )


async def next_updates(listener: Listener) -> list[LiveUpdate]:
    return await asyncio.wait_for(listener.next_batch(), WAIT)


async def test_given_a_listener_when_a_comment_is_notified_and_published_then_it_receives_one_update_per_delivery_with_cursors(  # noqa: E501
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given an account with a task, and a listener on it
    scenario = await commented_task(db, ["ann@example.test", "bob@example.test"])
    context = context_for(db, broadcast, scenario, tmp_path)
    async with running_feed(db, broadcast) as feed, feed.listen(context) as listener:
        # When a comment to both is stored and published
        people = scenario.people
        notified = await add_comment(
            db,
            scenario.account_id,
            scenario.task_id,
            author_id=scenario.account.owner_id,
            recipients=people,
        )
        await publish_changes(broadcast, notified.changes)

        # Then one batch brings one update per delivery, in the order of their events
        updates = await next_updates(listener)
        assert [u.delivery.id for u in updates] == notified.delivery_ids
        assert all(u.delivery.comment_id == notified.comment_id for u in updates)
        assert [row.id for row in updates[0].status_rows] == notified.delivery_ids
        # And each carries a later position than the one before
        positions = [u.position for u in updates]
        assert positions[0].high > listener.start.high
        assert positions == sorted(positions, key=lambda p: p.high)
        assert len({u.cursor for u in updates}) == len(updates)


async def test_given_a_listener_when_a_change_is_never_published_then_the_feed_still_finds_it_in_the_log(  # noqa: E501
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given a listener, and a feed that also reads the log on its own every 50 ms
    scenario = await commented_task(db, ["ann@example.test"])
    context = context_for(db, broadcast, scenario, tmp_path)
    async with (
        running_feed(db, broadcast, poll_seconds=0.05) as feed,
        feed.listen(context) as listener,
    ):
        # When a delivery changes and the broadcast message is lost
        delivery_id = scenario.notified.delivery_ids[0]
        async with db.write() as conn:
            await add_event(conn, [delivery_id], "delayed", T0)

        # Then the update arrives anyway
        (update,) = await next_updates(listener)
        assert update.delivery.id == delivery_id


async def test_given_listeners_of_two_accounts_when_one_account_changes_then_only_its_listener_hears(  # noqa: E501
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given two accounts, each with a listener
    ours = await commented_task(db, ["ann@example.test"])
    theirs = await commented_task(db, ["bob@example.test"])
    async with (
        running_feed(db, broadcast) as feed,
        feed.listen(context_for(db, broadcast, ours, tmp_path)) as our_listener,
        feed.listen(context_for(db, broadcast, theirs, tmp_path)) as their_listener,
    ):
        # When theirs changes, and then ours
        for scenario in (theirs, ours):
            async with db.write() as conn:
                await add_event(conn, scenario.notified.delivery_ids, "delayed", T0)
            await publish_changes(broadcast, scenario.notified.changes)

        # Then each listener hears its own account only
        (ours_update,) = await next_updates(our_listener)
        (theirs_update,) = await next_updates(their_listener)
        assert ours_update.delivery.account_id == ours.account_id
        assert theirs_update.delivery.account_id == theirs.account_id


async def test_given_a_free_account_when_its_delivery_changes_then_its_listener_hears_nothing(
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given a FREE account (no tracking) and a PAID one, each with a listener
    free = await commented_task(db, ["ann@example.test"], plan=Plan.FREE)
    paid = await commented_task(db, ["bob@example.test"])
    async with (
        running_feed(db, broadcast) as feed,
        feed.listen(context_for(db, broadcast, free, tmp_path)) as free_listener,
        feed.listen(context_for(db, broadcast, paid, tmp_path)) as paid_listener,
    ):
        # When both change, the FREE one first
        for scenario in (free, paid):
            async with db.write() as conn:
                await add_event(conn, scenario.notified.delivery_ids, "delayed", T0)
            await publish_changes(broadcast, scenario.notified.changes)

        # Then the PAID listener hears its change, and the FREE one nothing at all (its
        # change was read in the same pass or before)
        await next_updates(paid_listener)
        assert free_listener.pending == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_transactions_that_commit_out_of_id_order_when_the_later_one_is_seen_first_then_the_earlier_one_still_arrives_and_replays(  # noqa: E501
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given a listener, and two deliveries
    scenario = await commented_task(db, ["ann@example.test", "bob@example.test"])
    first, second = scenario.notified.delivery_ids
    context = context_for(db, broadcast, scenario, tmp_path)
    async with running_feed(db, broadcast) as feed, feed.listen(context) as listener:
        # When a transaction takes the lower event id and stays open
        written = asyncio.Event()
        release = asyncio.Event()

        async def slow_writer() -> None:
            async with db.write() as conn:
                await add_event(conn, [first], "delayed", T0)
                written.set()
                await release.wait()

        slow = asyncio.create_task(slow_writer())
        await asyncio.wait_for(written.wait(), WAIT)
        # and a later one commits first
        async with db.write() as conn:
            await add_event(conn, [second], "delayed", T0 + dt.timedelta(seconds=1))
        await feed.scan()

        # Then the later change arrives, at a position that leaves the open one's id out
        (later,) = await next_updates(listener)
        assert later.delivery.id == second
        (gap,) = later.position.gaps
        assert gap < later.event_ids[-1]

        # And once the earlier transaction commits, its change arrives too
        release.set()
        await slow
        await feed.scan()
        (earlier,) = await next_updates(listener)
        assert earlier.delivery.id == first
        assert earlier.event_ids == (gap,)
        assert earlier.position.includes(later.position)

        # And a client that stopped at the later update's cursor gets the earlier one
        # when it comes back
        replayed = await replay(context, later.position, feed.position, None)
        assert [u.delivery.id for u in replayed] == [first]
        assert replayed[0].position.includes(later.position)
        # while one that saw both gets nothing again
        assert await replay(context, earlier.position, feed.position, None) == []


async def test_given_a_cursor_when_replayed_then_only_the_deliveries_changed_after_it_come_back_in_order(  # noqa: E501
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given three deliveries; a client saw the first change only
    scenario = await commented_task(db, ["a@example.test", "b@example.test", "c@example.test"])
    a, b, c = scenario.notified.delivery_ids
    context = context_for(db, broadcast, scenario, tmp_path)
    async with running_feed(db, broadcast) as feed, feed.listen(context) as listener:
        for delivery_id in (a, b, c, b):
            async with db.write() as conn:
                await add_event(conn, [delivery_id], "delayed", T0)
            await feed.scan()
        seen = (await next_updates(listener))[0]
        assert seen.delivery.id == a

        # When it comes back with that update's cursor
        replayed = await replay(context, seen.position, feed.position, None)

        # Then it gets c and b (b changed last), each once, and nothing of a
        assert [u.delivery.id for u in replayed] == [c, b]
        # And the cursor of the last one has seen everything
        assert replayed[-1].position.includes(feed.position)


async def test_given_a_task_filter_when_replayed_then_other_tasks_changes_stay_out(
    db: Database, broadcast: Broadcast, tmp_path: Path
) -> None:
    # Given a change on the scenario's task
    scenario = await commented_task(db, ["a@example.test"])
    context = context_for(db, broadcast, scenario, tmp_path)
    async with running_feed(db, broadcast) as feed, feed.listen(context):
        async with db.write() as conn:
            await add_event(conn, scenario.notified.delivery_ids, "delayed", T0)
        await feed.scan()

        # When replayed for another task, and for this one
        elsewhere = await replay(context, Position(0), feed.position, uuid.uuid4())
        here = await replay(context, Position(0), feed.position, scenario.task_id)

        # Then only this task's deliveries come back
        assert elsewhere == []
        assert [u.delivery.id for u in here] == scenario.notified.delivery_ids
