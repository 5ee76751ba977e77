"""How long data is kept: delivery data until no plan's history window shows it, and
idempotency keys for their lifetime. The worker purges on this schedule when idle; the
`purge` command does it on demand."""

from __future__ import annotations

import datetime as dt

from common.settings import Settings
from db.engine import Database
from db.purge import purge
from domain.idempotency import KEY_LIFETIME


async def purge_expired(db: Database, settings: Settings, now: dt.datetime) -> int:
    """Delete what has expired at `now`; returns how many notifications went."""
    return await purge(
        db,
        older_than=now - dt.timedelta(days=settings.longest_history_days),
        keys_used_before=now - KEY_LIFETIME,
    )
