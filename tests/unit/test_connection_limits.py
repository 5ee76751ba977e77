"""The pure parts of the connection limits: the cap the open-file limit leaves room for,
and the count of websockets per token."""

from __future__ import annotations

import resource

from web.graphql import WebSocketSlots
from web.server import FD_RESERVE, connection_cap


def test_the_connection_cap_is_kept_when_the_open_file_limit_has_room_for_it() -> None:
    assert connection_cap(10_000, 1_048_576) == 10_000
    assert connection_cap(10_000, resource.RLIM_INFINITY) == 10_000


def test_the_connection_cap_is_lowered_to_what_the_open_file_limit_leaves() -> None:
    assert connection_cap(10_000, 4096) == 4096 - FD_RESERVE


def test_no_cap_stays_no_cap() -> None:
    assert connection_cap(0, 4096) == 0


def test_a_token_holds_at_most_its_slots_and_gets_one_back_when_a_websocket_closes() -> None:
    slots = WebSocketSlots(2)
    assert [slots.acquire(b"a"), slots.acquire(b"a"), slots.acquire(b"a")] == [True, True, False]
    assert slots.acquire(b"b")
    slots.release(b"a")
    assert slots.acquire(b"a")
    for _ in range(2):
        slots.release(b"a")
    slots.release(b"b")
    assert slots.open == {}


def test_zero_slots_means_no_cap() -> None:
    slots = WebSocketSlots(0)
    assert all(slots.acquire(b"a") for _ in range(1000))
