"""Icons that change live: queued → sent, a 550 with its reason and Resend, and an email
opened on /mailbox in another tab turning the icon "read" with its time in the popup."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import TIME_ZONE, Beacon, SinkBeacon, screenshot

pytestmark = pytest.mark.browser

# A policy refusal: a "no such user" would suppress the address, and a resend would
# then fail at once without asking the server again.
REJECTED = "deny-rita@example.test"
REASON = f"550 5.7.1 <{REJECTED}>: Recipient address rejected: Access denied"


async def test_an_icon_goes_from_queued_to_sent_without_a_reload(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    await dashboard.add_contact("Ann", "ann@example.test")
    await dashboard.add_contact("Bob", "bob@example.test")
    await dashboard.create_task("Quote for ACME", ["Ann", "Bob"])
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT", "2/2")
    # A marker that a reload would wipe: every change below must arrive live.
    await page.evaluate("window.notReloaded = true")

    async with with_sink.sink.holding():
        comment = await dashboard.add_comment("The quote is ready")
        icon = dashboard.icon(comment)
        await dashboard.expect_state(icon, "QUEUED", "2/2")
        await expect(icon).to_have_attribute(
            "title", "Queued: Waiting to be sent.\n2 recipients: Queued: 2"
        )
        await screenshot(page, "icon-queued")
    await dashboard.expect_state(icon, "SENT", "2/2")
    await expect(icon).to_contain_text("Sent")
    assert await page.evaluate("window.notReloaded") is True
    await screenshot(page, "icon-sent")


async def test_the_popup_shows_the_550_reason_and_resends(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    await dashboard.add_contact("Ann", "ann@example.test")
    await dashboard.add_contact("Rita", REJECTED)
    await dashboard.create_task("Invoice 42", ["Ann", "Rita"])

    # One of two failed: the aggregate is "Send error", with its count, in the list too.
    await dashboard.expect_state(dashboard.feed_task_icon, "FAILED", "1/2")
    list_icon = dashboard.icon(dashboard.task_in_list("Invoice 42"))
    await dashboard.expect_state(list_icon, "FAILED", "1/2")

    await list_icon.click()
    dialog = dashboard.dialog
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Task “Invoice 42”")
    rita = dashboard.delivery_row(REJECTED)
    await expect(rita.locator(".pill")).to_have_text("Send error")
    await expect(rita.locator(".delivery__name")).to_have_text("Rita")
    await expect(rita.locator(".channel")).to_have_text("Email")
    await expect(rita.locator(".error__message")).to_have_text(REASON)
    await expect(rita.locator(".error__kind")).to_have_text("(permanent)")
    await expect(dashboard.fact(rita, "failedAt").locator("time")).to_have_count(1)
    ann = dashboard.delivery_row("ann@example.test")
    await expect(ann.locator(".pill")).to_have_text("Sent")
    await expect(dashboard.fact(ann, "acceptedBy")).to_have_text("sink.test")
    # Resend is offered on the failed row only.
    await expect(ann.get_by_role("button", name="Resend")).to_have_count(0)
    await screenshot(page, "popup-550-reason")

    await rita.locator(".history summary").click()
    await rita.get_by_role("button", name="Resend").click()
    # The server answers 550 again. The popup updates in place: the row's history (kept
    # unfolded across the redraws) tells the whole story, and the row is FAILED again.
    history = rita.locator(".history li")
    await expect(history.locator(".event__text")).to_have_text(
        [
            "Queued for sending.",
            f"Sending failed: “{REASON}”.",
            "Sending again was requested.",
            f"Sending failed: “{REASON}”.",
        ]
    )
    await expect(rita.locator(".pill")).to_have_text("Send error")
    await expect(rita.get_by_role("button", name="Resend")).to_be_visible()
    await screenshot(page, "popup-after-resend")


async def test_opening_the_email_on_the_mailbox_turns_the_icon_read(
    browser: BrowserContext, embedded: Beacon
) -> None:
    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await dashboard.add_contact("Ann", "ann@example.test")
    task_id = await dashboard.create_task("Contract", ["Ann"])
    # Sent before the comment's email, so that one is the newest in the mailbox.
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT")
    comment = await dashboard.add_comment("Please sign the contract")
    icon = dashboard.icon(comment)
    await dashboard.expect_state(icon, "SENT")
    await expect(icon.locator(".status__count")).to_have_count(0)  # one recipient: no count
    await page.evaluate("window.notReloaded = true")

    # A second tab, as a person would: the mailbox, then the message. Its HTML is shown
    # in a sandboxed iframe, which loads the tracking pixel.
    mailbox = await browser.new_page()
    await mailbox.goto(f"{embedded.url}/mailbox")
    # Newest first; the subject says what happened, then the task's title.
    await mailbox.get_by_role("link", name="[Beacon] New comment on Contract").click()
    email = mailbox.frame_locator("iframe[title='Message HTML']")
    await expect(email.get_by_text("Please sign the contract")).to_be_visible()
    await screenshot(mailbox, "mailbox-message")

    await dashboard.expect_state(icon, "READ")
    assert await page.evaluate("window.notReloaded") is True

    await icon.click()
    row = dashboard.delivery_row("ann@example.test")
    await expect(row.locator(".pill")).to_have_text("Read")
    read_at = dashboard.fact(row, "readAt").locator("time")
    await expect(read_at).to_have_count(1)
    # Chromium showed the image as a person's browser would: a read by the recipient
    await expect(dashboard.fact(row, "readConfidence")).to_have_text("the recipient's mail app")

    # The page shows the API's instant, in the viewer's zone (the browser runs in Tokyo).
    api = Api(embedded)
    try:
        [delivery] = await api.comment_deliveries(task_id, "Please sign the contract")
    finally:
        await api.close()
    assert delivery["state"] == "READ"
    assert await read_at.get_attribute("datetime") == delivery["readAt"]
    local = dt.datetime.fromisoformat(delivery["readAt"]).astimezone(ZoneInfo(TIME_ZONE))
    await expect(read_at).to_contain_text(local.strftime("%H:%M:%S"))
    await expect(read_at).to_contain_text(str(local.day))
    await expect(dashboard.dialog).to_contain_text(f"Times are in your time zone, {TIME_ZONE}.")
    await screenshot(page, "popup-read-time")
