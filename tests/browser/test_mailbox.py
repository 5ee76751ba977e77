"""The built-in mailbox shows times in the viewer's own time zone."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import BrowserContext, Locator, expect

from tests.browser.dashboard import Api
from tests.browser.support import TIME_ZONE, Beacon, screenshot
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


async def received_at(beacon: Beacon, subject: str) -> dt.datetime:
    async def arrived() -> dt.datetime:
        async with httpx.AsyncClient(base_url=beacon.url) as client:
            listing = (await client.get("/mailbox/messages.json")).json()
        found = [m for m in listing if m["subject"] == subject]
        assert found, f"no message {subject!r} yet"
        return dt.datetime.fromisoformat(found[0]["received_at"])

    return await eventually(arrived)


async def expect_local(node: Locator, instant: dt.datetime) -> None:
    """Shown in Tokyo time (the browser's zone), the UTC original in its tooltip."""
    local = instant.astimezone(ZoneInfo(TIME_ZONE))
    utc = instant.astimezone(dt.UTC)
    await expect(node).to_contain_text(local.strftime("%H:%M:%S"))
    await expect(node).to_contain_text(str(local.day))
    await expect(node).not_to_contain_text("UTC")
    await expect(node).to_have_attribute("title", utc.strftime("%Y-%m-%d %H:%M:%S UTC"))


async def test_the_mailbox_shows_times_in_the_viewers_time_zone(
    browser: BrowserContext, embedded: Beacon
) -> None:
    api = Api(embedded)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        await api.create_task("Timesheet", [ann])
    finally:
        await api.close()
    subject = "[Beacon] New task: Timesheet"
    instant = await received_at(embedded, subject)

    page = await browser.new_page()
    await page.goto(f"{embedded.url}/mailbox")
    await expect(page.locator("#time-zone")).to_have_text(
        f"Times are in your time zone, {TIME_ZONE}."
    )
    row = page.locator("tr", has=page.get_by_role("link", name=subject))
    await expect_local(row.locator("time"), instant)
    await screenshot(page, "mailbox-local-times")

    await row.get_by_role("link").click()
    received = page.locator("tr", has=page.locator("th", has_text="Received")).locator("time")
    await expect_local(received, instant)
    # The email's own Date header too (written by the server a moment before).
    date = page.locator("tr", has=page.locator("th", has_text="Date")).locator("time")
    await expect(date).not_to_contain_text("UTC")
    await expect(date).to_have_attribute(
        "title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
