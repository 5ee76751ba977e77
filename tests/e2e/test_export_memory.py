"""The export streams in constant memory: 200,000 deliveries leave the running server
(PostgreSQL) while its peak resident memory grows by less than 50 MB."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import Beacon
from tests.support.delivery_seed import seed_deliveries

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

log = logging.getLogger(__name__)

ROWS = 200_000
MAX_GROWTH_KB = 50 * 1024


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")


async def test_exporting_200k_deliveries_keeps_the_servers_peak_memory_flat(
    beacon: Beacon, database_url: str
) -> None:
    # given: 200k deliveries in the account, and a server that has exported once (so
    # its code and connections are warm)
    await seed_deliveries(
        database_url,
        uuid.UUID(beacon.account.account_id),
        uuid.UUID(beacon.account.person_id),
        ROWS,
    )
    assert beacon.server.process is not None
    pid = beacon.server.process.pid
    headers = {"Authorization": f"Bearer {beacon.token}"}
    async with httpx.AsyncClient(base_url=beacon.base_url, headers=headers, timeout=60) as http:
        recent = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        warm = await http.get("/export/deliveries.csv", params={"since": recent})
        assert warm.status_code == 200
        before = peak_rss_kb(pid)

        # when: the whole log as CSV, read as it arrives
        lines = 0
        async with http.stream("GET", "/export/deliveries.csv") as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                lines += chunk.count(b"\n")
        after = peak_rss_kb(pid)

    # then: every row (and the header), and the peak barely moved
    assert lines == ROWS + 1
    log.info("export: peak RSS %.1f MB -> %.1f MB", before / 1024, after / 1024)
    assert after - before < MAX_GROWTH_KB, f"peak RSS grew {(after - before) / 1024:.1f} MB"
