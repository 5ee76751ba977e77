"""The task feed: the "show system comments" toggle, and the popup from the keyboard."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import uuid

import pytest
from playwright.async_api import BrowserContext, expect

from common.domain import Channel, NotificationKind
from db import accounts as db_accounts
from db import tasks as db_tasks
from db.engine import Database
from domain.notifications import enqueue_notification
from tests.browser.dashboard import Api, Dashboard, task_with_a_comment
from tests.browser.support import Beacon, screenshot
from tests.support.server import ROOT

pytestmark = pytest.mark.browser


async def add_system_comment(beacon: Beacon, account_id: str, task_id: str, body: str) -> None:
    """What an automation scenario would write: a system comment (no author) whose email
    goes to the task's subscribers. A scenario (createScenario) writes one when it fires;
    here it is written straight into the server's database, so that the test chooses its
    body and moment; the server's worker sends it like any other."""
    db = Database(beacon.database_url)
    try:
        async with db.write() as conn:
            now = dt.datetime.now(dt.UTC)
            account = await db_accounts.get_account(conn, uuid.UUID(account_id))
            task = uuid.UUID(task_id)
            comment_id = await db_tasks.insert_comment(
                conn,
                account_id=account.id,
                task_id=task,
                author_id=None,
                body=body,
                is_system=True,
                now=now,
            )
            subscriber_ids = (await db_tasks.subscriber_ids_by_task(conn, [task]))[task]
            recipients = await db_accounts.people_by_ids(conn, account.id, subscriber_ids)
            await enqueue_notification(
                conn,
                account=account,
                task_id=task,
                comment_id=comment_id,
                kind=NotificationKind.COMMENT_ADDED,
                recipients=[recipients[person_id] for person_id in subscriber_ids],
                configured=frozenset(Channel),
                message_id_domain="localhost",
                now=now,
            )
    finally:
        await db.dispose()


async def test_system_comments_and_their_icons_show_only_with_the_toggle(
    browser: BrowserContext, embedded: Beacon
) -> None:
    task_id = await task_with_a_comment(embedded, "Onboarding", "Welcome aboard")
    api = Api(embedded)
    try:
        account_id = await api.account_id()
    finally:
        await api.close()
    await add_system_comment(embedded, account_id, task_id, "Reminder sent by a scenario")

    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await dashboard.open_task("Onboarding")
    await dashboard.expect_state(dashboard.icon(dashboard.comment("Welcome aboard")), "SENT")
    system = dashboard.comment("Reminder sent by a scenario")
    await expect(system).to_have_count(0)

    toggle = page.get_by_label("Show system comments")
    # The toggle is the API's `includeSystem` argument.
    async with page.expect_request(
        lambda request: (
            request.url.endswith("/graphql") and '"includeSystem":true' in (request.post_data or "")
        )
    ):
        await toggle.check()
    await expect(system).to_be_visible()
    await expect(system.locator(".badge")).to_have_text("System")
    await expect(system.locator(".comment__author")).to_have_text("Automation")
    await dashboard.expect_state(dashboard.icon(system), "SENT")
    await screenshot(page, "system-comments-shown")

    await toggle.uncheck()
    await expect(system).to_have_count(0)
    await expect(dashboard.comment("Welcome aboard")).to_be_visible()


async def test_the_popup_works_from_the_keyboard(browser: BrowserContext, embedded: Beacon) -> None:
    await task_with_a_comment(embedded, "Keyboard", "Reachable with Tab")
    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await dashboard.open_task("Keyboard")
    icon = dashboard.icon(dashboard.comment("Reachable with Tab"))
    await dashboard.expect_state(icon, "SENT")

    # Tab from the control before it, as a keyboard user would move through the feed.
    await page.get_by_label("Show system comments").focus()
    await page.keyboard.press("Tab")
    await expect(icon).to_be_focused()
    await page.keyboard.press("Enter")

    dialog = dashboard.dialog
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("aria-modal", "true")
    await expect(dialog).to_contain_text("Comment by demo: “Reachable with Tab”")
    await expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    # The page behind is inert: Tab moves on inside the dialog.
    await page.keyboard.press("Tab")
    assert await dialog.evaluate("dialog => dialog.contains(document.activeElement)")
    await screenshot(page, "popup-keyboard")

    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(icon).to_be_focused()

    # Space opens it too (it is a real button), and the Close button closes it.
    await page.keyboard.press("Space")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Enter")  # on Close, which has focus
    await expect(dialog).to_be_hidden()
    await expect(icon).to_be_focused()


async def test_a_free_account_sees_its_feed_without_icons(
    browser: BrowserContext, embedded: Beacon
) -> None:
    # Tracking is for PAID and PREMIUM: on FREE, mail is sent but deliveryStatus is null.
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "main.py",
            "create-account",
            "--name",
            "Free",
            "--plan",
            "FREE",
            "--email",
            "owner@free.test",
        ],
        cwd=ROOT,
        env=embedded.server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = json.loads(result.stdout)["token"]

    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(token)
    await expect(page.locator("#account")).to_have_text("Free · FREE")
    await expect(page.locator("#free-plan")).to_contain_text("PAID and PREMIUM")
    await dashboard.add_contact("Ann", "ann@example.test")
    await dashboard.create_task("Untracked", ["Ann"])
    comment = await dashboard.add_comment("Sent, but not tracked")
    await expect(comment.locator(".comment__body")).to_have_text("Sent, but not tracked")
    await expect(dashboard.icon(comment)).to_have_count(0)
    await expect(dashboard.feed_task_icon).to_have_count(0)
    await expect(dashboard.icon(dashboard.task_in_list("Untracked"))).to_have_count(0)
    await screenshot(page, "free-plan-no-icons")
