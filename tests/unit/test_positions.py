"""Positions in the delivery event log, and the cursors that carry them."""

from __future__ import annotations

import pytest

from live.positions import InvalidCursor, Position, decode_cursor, encode_cursor


def test_a_position_covers_what_it_reached_except_its_gaps() -> None:
    position = Position(10, frozenset({4, 7}))
    assert [n for n in range(1, 13) if position.covers(n)] == [1, 2, 3, 5, 6, 8, 9, 10]


def test_advancing_past_ids_not_yet_visible_leaves_them_as_gaps() -> None:
    # given everything up to 10; then 11, 13 and 16 become visible, up to 16
    advanced = Position(10).advance([11, 13, 16], 16)
    assert advanced == Position(16, frozenset({12, 14, 15}))


def test_advancing_with_an_id_that_filled_a_gap_removes_the_gap() -> None:
    advanced = Position(16, frozenset({12, 14})).advance([14, 17], 17)
    assert advanced == Position(17, frozenset({12}))


def test_a_union_covers_what_either_covers() -> None:
    mine = Position(10, frozenset({4, 7}))
    theirs = Position(8, frozenset({7}))
    assert mine.union(theirs) == Position(10, frozenset({7}))
    assert theirs.union(mine) == mine.union(theirs)


@pytest.mark.parametrize(
    ("bigger", "smaller", "includes"),
    [
        (Position(10), Position(8, frozenset({3})), True),
        (Position(10, frozenset({3})), Position(8, frozenset({3})), True),
        (Position(10, frozenset({3})), Position(8), False),
        (Position(8), Position(10), False),
        (Position(10, frozenset({9})), Position(8), True),
    ],
)
def test_a_position_includes_another_when_it_covers_all_the_other_does(
    bigger: Position, smaller: Position, includes: bool
) -> None:
    assert bigger.includes(smaller) is includes


@pytest.mark.parametrize(
    "position",
    [Position(0), Position(42), Position(10**12, frozenset({10**12 - 1, 5}))],
)
def test_a_cursor_gives_back_its_position(position: Position) -> None:
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "ZGMxOg",  # "dc1:" and nothing
        "ZGMxOi01",  # "dc1:-5"
        "ZGMxOjU6OQ",  # "dc1:5:9": a gap above the position
        "ZGMxOjU6MA",  # "dc1:5:0": a gap at the position itself
        "eHh4OjU",  # "xxx:5": another prefix
        "Y3Vyc29y\u00e9",
    ],
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
