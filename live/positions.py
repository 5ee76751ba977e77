"""Positions in the delivery event log, and the cursors that carry them to clients.

Event ids come from one sequence, but on PostgreSQL transactions commit in any order:
id 41 may become visible after id 42. So a position is not just "everything up to
`high`": it is everything up to `high` except `gaps`, the ids that were not visible yet
when the position was taken (a transaction still running, or one rolled back). A later
read looks at the gaps again, and delivers what filled them. On SQLite writers are
serialised and there are no gaps.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CURSOR_PREFIX = "dc1:"
# A cursor may name at most this many gaps; more means it was not made by us.
MAX_CURSOR_GAPS = 10_000


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    high: int = 0
    gaps: frozenset[int] = field(default_factory=frozenset)

    def covers(self, event_id: int) -> bool:
        """Whether whoever holds this position has seen `event_id`."""
        return event_id <= self.high and event_id not in self.gaps

    def includes(self, other: Position) -> bool:
        """Whether every id `other` covers, this one covers too."""
        if other.high > self.high:
            return False
        return all(gap in other.gaps for gap in self.gaps if gap <= other.high)

    def union(self, other: Position) -> Position:
        """Covers what either covers."""
        low, high = sorted((self, other), key=lambda position: position.high)
        gaps = {gap for gap in high.gaps if gap > low.high or gap in low.gaps}
        return Position(high.high, frozenset(gaps))

    def advance(self, visible: Sequence[int], upto: int) -> Position:
        """This position plus `visible` (sorted ids just read), knowing that every id up
        to `upto` that was committed when they were read is among them: the others
        become gaps."""
        high = max(self.high, upto)
        seen = set(visible)
        gaps = {gap for gap in self.gaps if gap not in seen}
        start = bisect.bisect_right(visible, self.high)
        expected = self.high + 1
        for event_id in visible[start:]:
            if event_id > high:
                break
            gaps.update(range(expected, event_id))
            expected = event_id + 1
        gaps.update(range(expected, high + 1))
        return Position(high, frozenset(gaps))

    def without_gaps(self, settled: Iterable[int]) -> Position:
        """Gave up waiting for `settled`: treat them as rolled back."""
        return Position(self.high, self.gaps.difference(settled))


def encode_cursor(position: Position) -> str:
    raw = f"{position.high}"
    if position.gaps:
        raw += ":" + ",".join(str(position.high - gap) for gap in sorted(position.gaps))
    return base64.urlsafe_b64encode((CURSOR_PREFIX + raw).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (UnicodeError, ValueError, binascii.Error):
        raise InvalidCursor("not a deliveryUpdated cursor") from None
    if not raw.startswith(CURSOR_PREFIX):
        raise InvalidCursor("not a deliveryUpdated cursor")
    high_text, _, gaps_text = raw.removeprefix(CURSOR_PREFIX).partition(":")
    try:
        high = int(high_text)
        offsets = [int(part) for part in gaps_text.split(",")] if gaps_text else []
    except ValueError:
        raise InvalidCursor("not a deliveryUpdated cursor") from None
    if high < 0 or len(offsets) > MAX_CURSOR_GAPS or any(not 0 < d <= high for d in offsets):
        raise InvalidCursor("not a deliveryUpdated cursor")
    return Position(high, frozenset(high - offset for offset in offsets))
