"""The layout holds with long names and addresses, on a desktop and on a phone: no
sideways scrolling, every icon clickable, and a tapped task's feed comes into view."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Locator, Page, ViewportSize, expect

from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser

DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

# Nothing to break a line at: each would set the width of whatever holds it.
LONG_NAME = "Bartholomew-Maximilian-Featherstonehaugh-Cholmondeley-Worthington-Smythe"
LONG_EMAIL = (
    "bartholomew.maximilian.featherstonehaugh.cholmondeley"
    "@accounts-payable.subsidiary.example-corporation.example.test"
)
TITLE = "Quarterly-reconciliation-of-the-accounts-payable-ledger-for-the-northern-region"


async def long_names(beacon: Beacon) -> None:
    """A contact with a long name and address, subscribed to two tasks with comments."""
    api = Api(beacon)
    try:
        long = await api.add_contact(LONG_NAME, LONG_EMAIL)
        ann = await api.add_contact("Ann", "ann@example.test")
        first = await api.create_task("Short one", [ann, long])
        await api.add_comment(first, "A short comment")
        task = await api.create_task(TITLE, [long, ann])
        await api.add_comment(task, f"Forwarded to {LONG_EMAIL} by {LONG_NAME}")
    finally:
        await api.close()


async def assert_no_sideways_scroll(page: Page) -> None:
    widths = await page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths[0]} px in {widths[1]}"


async def assert_clickable(icon: Locator) -> None:
    """What is at the icon's centre is the icon (not a neighbour laid over it)."""
    await icon.scroll_into_view_if_needed()
    on_top = await icon.evaluate(
        """button => {
            const box = button.getBoundingClientRect();
            const found = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            return button.contains(found);
        }"""
    )
    assert on_top, await icon.evaluate("b => b.closest('[data-status-key]').dataset.statusKey")


async def assert_layout_holds(page: Page, dashboard: Dashboard) -> None:
    await assert_no_sideways_scroll(page)
    icons = page.locator(".status-slot button")
    for index in range(await icons.count()):
        await assert_clickable(icons.nth(index))
    # The long texts are all there, wrapped or shortened with the whole in a tooltip.
    subscriber = page.locator("#subscriber-options label", has_text=LONG_NAME)
    await expect(subscriber).to_have_attribute("title", f"{LONG_NAME} {LONG_EMAIL}")
    await assert_within_width(page, subscriber)
    await assert_within_width(page, page.locator("#feed-meta"))
    await assert_within_width(page, dashboard.task_in_list(TITLE))


async def assert_within_width(page: Page, node: Locator) -> None:
    box = await node.bounding_box()
    width = await page.evaluate("window.innerWidth")
    assert box is not None
    assert box["x"] >= 0, (box, width)
    assert box["x"] + box["width"] <= width, (box, width)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_long_names_and_addresses_neither_overflow_nor_cover_the_icons(
    browser: BrowserContext, embedded: Beacon, viewport: ViewportSize
) -> None:
    await long_names(embedded)
    page = await browser.new_page()
    await page.set_viewport_size(viewport)
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await expect(page.locator("#subscriber-options label", has_text=LONG_NAME)).to_be_visible()
    await dashboard.open_task(TITLE)
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT", "2/2")
    await dashboard.expect_state(dashboard.icon(dashboard.comment("Forwarded to")), "SENT", "2/2")

    await assert_layout_holds(page, dashboard)
    await screenshot(page, f"layout-long-names-{viewport['width']}")

    # The popup, with the long name and address on a row of its own.
    await dashboard.feed_task_icon.click()
    row = dashboard.delivery_row(LONG_EMAIL)
    await expect(row).to_be_visible()
    await assert_within_width(page, row)
    await assert_no_sideways_scroll(page)
    await screenshot(page, f"layout-long-names-popup-{viewport['width']}")


async def test_on_a_phone_tapping_a_task_brings_its_feed_into_view(
    browser: BrowserContext, embedded: Beacon
) -> None:
    await long_names(embedded)
    api = Api(embedded)
    try:
        for number in range(6):  # a list longer than the screen, as on a busy account
            await api.create_task(f"Errand {number + 1}", [])
    finally:
        await api.close()
    page = await browser.new_page()
    await page.set_viewport_size(PHONE)
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    feed_title = page.locator("#feed-title")
    await expect(page.locator("#feed")).not_to_be_in_viewport()

    for title in ("Short one", TITLE):
        link = page.locator(".task-link", has_text=title)
        await link.click()
        await expect(feed_title).to_have_text(title)
        await expect(feed_title).to_be_in_viewport(ratio=1)
        await expect(feed_title).to_be_focused()  # announced by a screen reader
        await assert_no_sideways_scroll(page)
        await screenshot(page, "layout-phone-feed-in-view")

        # And back to the list, where the task just read is.
        await page.get_by_role("button", name="Back to the tasks").click()
        await expect(link).to_be_in_viewport(ratio=1)
        await expect(link).to_be_focused()
