"""What the dashboard tells beyond an icon's state (issue 13, items 12, 14 and 15): a
suppressed address with its Lift suppression action, a delivery held back by the rate
limit, and the task list's icon as the worst over the task's comments too, live."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, expect

from db import suppressions as db_suppressions
from db.engine import Database
from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, SinkBeacon, running_beacon, screenshot
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

RITA = "reject-rita@example.test"

TASK_STATES = """
query($id: ID!) { task(id: $id) { deliveryStatus { deliveries { id state } } } }
"""

SUPPRESSIONS = "query { suppressions { address reason } }"

COMMENT_DELIVERIES = """
query($id: ID!) {
  task(id: $id) { comments { edges { node { deliveryStatus { deliveries { heldUntil } } } } } }
}
"""

UPDATE_EMAIL = """
mutation($id: ID!, $email: String) { updatePerson(id: $id, input: {email: $email}) { id } }
"""


@pytest.fixture
async def rate_limited(tmp_path: Path) -> AsyncIterator[SinkBeacon]:
    """The server sending through the test SMTP server, one email per address per 10 min."""
    async with SmtpSink() as sink:
        env = {
            "SMTP_URL": sink.url,
            "RECIPIENT_RATE_LIMIT": "1",
            "RECIPIENT_RATE_WINDOW_SECONDS": "600",
        }
        async with running_beacon(tmp_path / "server", env) as beacon:
            yield SinkBeacon(beacon.server, beacon.token, sink=sink)


async def failed_task(beacon: Beacon, title: str) -> tuple[Api, str]:
    """A task whose email to Rita her server refused; the API client for more setup."""
    api = Api(beacon)
    rita = await api.add_contact("Rita", RITA)
    task_id = await api.create_task(title, [rita])

    async def failed() -> None:
        data = await api.client.execute(TASK_STATES, {"id": task_id})
        states = [d["state"] for d in data["task"]["deliveryStatus"]["deliveries"]]
        assert states == ["FAILED"], states

    await eventually(failed)
    return api, task_id


async def suppress(beacon: Beacon, account_id: str, address: str) -> None:
    """What a hard bounce does: the address goes on the account's suppression list (a
    5.1.1 at RCPT TO already put it there; written here too, so as not to depend on it)."""
    db = Database(beacon.database_url)
    try:
        async with db.write() as conn:
            await db_suppressions.suppress(
                conn,
                account_id=uuid.UUID(account_id),
                channel="EMAIL",
                address=address,
                reason="hard bounce: 550 5.1.1 User unknown",
                now=dt.datetime.now(dt.UTC),
            )
    finally:
        await db.dispose()


async def test_the_popup_says_since_when_and_why_an_address_is_suppressed_and_lifts_it(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    # Given Rita's email failed and her address was then suppressed
    api, _ = await failed_task(with_sink, "Invoice 42")
    try:
        await suppress(with_sink, await api.account_id(), RITA)
        (entry,) = (await api.client.execute(SUPPRESSIONS))["suppressions"]
    finally:
        await api.close()

    # When the task's popup is opened
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    await dashboard.open_task("Invoice 42")
    await dashboard.feed_task_icon.click()

    # Then Rita's row says since when and why, and offers to lift it instead of Resend
    rita = dashboard.delivery_row(RITA)
    notice = rita.locator(".delivery__suppression")
    await expect(notice).to_contain_text("This address is suppressed since ")
    await expect(notice).to_contain_text(f" because {entry['reason']}.")
    await expect(rita.get_by_role("button", name="Resend")).to_have_count(0)
    await screenshot(page, "popup-suppressed")

    # When the suppression is lifted
    await rita.get_by_role("button", name="Lift suppression").click()

    # Then the notice goes, Resend is offered, and a resend is requested
    await expect(notice).to_have_count(0)
    await rita.get_by_role("button", name="Resend").click()
    await rita.locator(".history summary").click()
    await expect(rita.locator(".history .event__text")).to_contain_text(
        ["Sending again was requested."]
    )
    # And when her server refuses the address again, the notice is back, live
    await expect(notice).to_contain_text("This address is suppressed since ")
    await expect(rita.get_by_role("button", name="Resend")).to_have_count(0)


async def test_a_delivery_held_back_by_the_rate_limit_shows_until_when(
    browser: BrowserContext, rate_limited: SinkBeacon
) -> None:
    # Given Ann got her one email of the window: the task's
    page = await browser.new_page()
    dashboard = Dashboard(page, rate_limited.url)
    await dashboard.signed_in(rate_limited.token)
    await dashboard.add_contact("Ann", "ann@example.test")
    task_id = await dashboard.create_task("Quote", ["Ann"])
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT")

    # When a comment writes to her again
    comment = await dashboard.add_comment("One more thing")

    # Then its icon counts it as held back, and its tooltip says until when
    icon = dashboard.icon(comment)
    await expect(icon.locator(".status__held")).to_have_text("1 held back")
    await expect(icon).to_have_attribute("data-state", "QUEUED")
    await expect(icon).to_have_attribute(
        "title", re.compile(re.escape("Held back by the rate limit: 1, the first until "))
    )
    await expect(icon).to_have_accessible_name("Queued, 1 held back, show delivery details")
    # And so does the task's icon in the list
    listed = dashboard.icon(dashboard.task_in_list("Quote"))
    await expect(listed.locator(".status__count").first).to_have_text("1/2")
    await expect(listed.locator(".status__held")).to_have_text("1 held back")

    # And its popup row says until when, as the API does
    await icon.click()
    held = dashboard.fact(dashboard.delivery_row("ann@example.test"), "heldUntil").locator("time")
    await expect(held).to_have_count(1)
    api = Api(rate_limited)
    try:
        data = await api.client.execute(COMMENT_DELIVERIES, {"id": task_id})
    finally:
        await api.close()
    [edge] = data["task"]["comments"]["edges"]
    [delivery] = edge["node"]["deliveryStatus"]["deliveries"]
    assert await held.get_attribute("datetime") == delivery["heldUntil"]
    await screenshot(page, "popup-held-back")


async def test_the_task_lists_icon_is_the_worst_over_the_tasks_comments_and_changes_live(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    # Given a task whose own email to Ann was sent
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    await dashboard.add_contact("Ann", "ann@example.test")
    await dashboard.create_task("Contract", ["Ann"])
    listed = dashboard.icon(dashboard.task_in_list("Contract"))
    await dashboard.expect_state(listed, "SENT")
    await page.evaluate("window.notReloaded = true")

    # When Ann's address stops working and a comment is written
    api = Api(with_sink)
    try:
        people = (await api.client.execute("query { people { id name } }"))["people"]
        ann = next(person["id"] for person in people if person["name"] == "Ann")
        await api.client.execute(UPDATE_EMAIL, {"id": ann, "email": "deny-ann@example.test"})
    finally:
        await api.close()
    comment = await dashboard.add_comment("Please sign")
    await dashboard.expect_state(dashboard.icon(comment), "FAILED")

    # Then the list's icon shows the failure, live, while the task's own icon stays sent
    await dashboard.expect_state(listed, "FAILED", "1/2")
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT")
    assert await page.evaluate("window.notReloaded") is True
    await screenshot(page, "task-list-worst-state")

    # And its popup lists the deliveries behind it: the task's and the comment's
    await listed.click()
    await expect(dashboard.dialog).to_contain_text("Task “Contract” and its comments")
    rows = dashboard.dialog.locator("li.delivery")
    await expect(rows.locator(".address")).to_have_text(
        ["ann@example.test", "deny-ann@example.test"]
    )
    await expect(rows.locator(".pill")).to_have_text(["Sent", "Send error"])
