"""The team on the dashboard (issue 14): a second person signs in with their own token
and sees who they are; a MEMBER does not see what only an OWNER or ADMIN may do; the
bell counts their unread notifications live and lists them; an invitation link signs a
teammate in once."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, SinkBeacon, screenshot
from tests.browser.test_delivery_details import RITA, failed_task, suppress

pytestmark = pytest.mark.browser

ADD_EMPLOYEE = """
mutation($name: String!) { addPerson(input: {name: $name, kind: EMPLOYEE}) { id } }
"""

CREATE_TOKEN = """
mutation($id: ID!) { createApiToken(personId: $id, name: "browser") { secret } }
"""


async def teammate(api: Api, name: str) -> tuple[str, str]:
    """An employee (a MEMBER) with their own token: (person id, token)."""
    added = await api.client.execute(ADD_EMPLOYEE, {"name": name})
    person_id = str(added["addPerson"]["id"])
    created = await api.client.execute(CREATE_TOKEN, {"id": person_id})
    return person_id, str(created["createApiToken"]["secret"])


async def test_a_second_person_signs_in_and_sees_who_they_are_without_owner_controls(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    # Given a task whose email failed to a suppressed address, and a MEMBER, Mia
    api, _ = await failed_task(with_sink, "Invoice 42")
    try:
        await suppress(with_sink, await api.account_id(), RITA)
        _, token = await teammate(api, "Mia")
    finally:
        await api.close()

    # When the owner opens the failed delivery, they are offered to lift the suppression
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    await expect(page.locator("#viewer")).to_have_text("demo · OWNER")
    invite = page.get_by_text("Invite a teammate")
    await expect(invite).to_be_visible()
    await dashboard.open_task("Invoice 42")
    await dashboard.feed_task_icon.click()
    lift = dashboard.delivery_row(RITA).get_by_role("button", name="Lift suppression")
    await expect(lift).to_be_visible()
    await page.keyboard.press("Escape")
    await page.get_by_role("button", name="Sign out").click()

    # When Mia signs in with her own token
    await dashboard.sign_in(token)

    # Then the header says who she is and her role, in the same account
    await expect(page.locator("#viewer")).to_have_text("Mia · MEMBER")
    await expect(page.locator("#account")).to_have_text("Demo · PREMIUM")
    await expect(page.locator("#live")).to_have_attribute("data-status", "online")
    # And she sees the task and its popup, but not the OWNER's action
    await dashboard.open_task("Invoice 42")
    await dashboard.feed_task_icon.click()
    rita = dashboard.delivery_row(RITA)
    await expect(rita.locator(".delivery__suppression")).to_contain_text("suppressed since")
    await expect(rita.get_by_role("button", name="Lift suppression")).to_be_hidden()
    await page.keyboard.press("Escape")
    await expect(invite).to_be_hidden()
    await screenshot(page, "member-popup")


async def test_the_bell_counts_unread_notifications_live_and_lists_them(
    browser: BrowserContext, embedded: Beacon
) -> None:
    # Given Mia, a MEMBER, signed in on the dashboard
    api = Api(embedded)
    try:
        mia, token = await teammate(api, "Mia")
        page = await browser.new_page()
        dashboard = Dashboard(page, embedded.url)
        await dashboard.signed_in(token)
        bell = page.locator("#bell")
        await expect(bell).to_have_accessible_name("Notifications, 0 unread")
        await expect(page.locator("#bell-count")).to_be_hidden()

        # When the owner creates a task for her and comments on it
        task_id = await api.create_task("Quarterly plan", [mia])
        await api.add_comment(task_id, "Draft is ready")
    finally:
        await api.close()

    # Then the bell counts two, live
    await expect(page.locator("#bell-count")).to_have_text("2")
    await expect(bell).to_have_accessible_name("Notifications, 2 unread")

    # When she opens the bell
    await bell.click()

    # Then the panel lists both, newest first, unread
    items = page.locator("#bell-list li")
    await expect(items).to_have_count(2)
    await expect(items.locator(".bell__text")).to_have_text(
        ["Draft is ready", "New task: Quarterly plan"]
    )
    await expect(page.locator("#bell-list .bell__item--unread")).to_have_count(2)
    await screenshot(page, "bell-panel")

    # When she opens the comment's notification
    await items.first.get_by_role("button").click()

    # Then it is read, the count drops, and the task is shown
    await expect(page.locator("#feed-title")).to_have_text("Quarterly plan")
    await expect(page.locator("#bell-count")).to_have_text("1")

    # When she marks all read
    await bell.click()
    await page.get_by_role("button", name="Mark all read").click()

    # Then none is unread and the count is gone
    await expect(page.locator("#bell-list .bell__item--unread")).to_have_count(0)
    await expect(page.locator("#bell-count")).to_be_hidden()
    await expect(bell).to_have_accessible_name("Notifications, 0 unread")


async def test_an_invitation_link_signs_the_teammate_in_once(
    browser: BrowserContext, with_sink: SinkBeacon
) -> None:
    # Given the owner invited Nina from the dashboard
    page = await browser.new_page()
    dashboard = Dashboard(page, with_sink.url)
    await dashboard.signed_in(with_sink.token)
    panel = page.locator("#invite-panel")
    await panel.locator("summary").click()
    await panel.get_by_label("Teammate").fill("Nina")
    await panel.get_by_label("Their address").fill("nina@example.test")
    await panel.get_by_role("button", name="Send invitation").click()
    await expect(panel.get_by_role("status")).to_have_text(
        "Invitation sent to Nina (nina@example.test)."
    )
    await page.get_by_role("button", name="Sign out").click()
    (received,) = await with_sink.sink.wait_for_messages(1)
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None
    link = next(word for word in str(body.get_content()).split() if "/#/invitation/" in word)

    # When she opens the link in her email and accepts
    await page.goto(link)
    await page.reload()  # only the fragment changed: load the page anew
    await expect(page.get_by_role("heading", name="You are invited")).to_be_visible()
    await page.get_by_role("button", name="Accept and sign in").click()

    # Then her new token is shown once, and continuing signs her in as herself
    token = page.locator("#invitation-secret")
    await expect(token).to_have_text(re.compile(r"^bcn_"))
    await screenshot(page, "invitation-token")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.locator("#viewer")).to_have_text("Nina · MEMBER")
    assert "invitation" not in page.url

    # And the same link a second time is refused
    await page.get_by_role("button", name="Sign out").click()
    await page.goto(link)
    await page.reload()  # only the fragment changed: load the page anew
    await page.get_by_role("button", name="Accept and sign in").click()
    await expect(page.locator("#invitation-error")).to_have_text(
        "This invitation link was already used or has expired. Ask for a new one."
    )
