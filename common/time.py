"""The one clock: timezone-aware UTC, so no naive timestamp reaches the database."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
