"""A task with more comments than one page: the feed opens at the newest, a new comment
shows at once (added here or elsewhere), and earlier ones load above on demand."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser


async def test_a_new_comment_shows_at_once_on_a_task_with_60_comments(
    browser: BrowserContext, embedded: Beacon
) -> None:
    api = Api(embedded)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        task_id = await api.create_task("Long thread", [ann])
        for number in range(1, 61):
            await api.add_comment(task_id, f"Comment {number}")

        page = await browser.new_page()
        dashboard = Dashboard(page, embedded.url)
        await dashboard.signed_in(embedded.token)
        await dashboard.open_task("Long thread")
        bodies = page.locator("#comment-list .comment__body")
        # The newest page (of 50), oldest first, with the way to the earlier ones above.
        shown = [f"Comment {number}" for number in range(11, 61)]
        await expect(bodies).to_have_text(shown)
        earlier = page.get_by_role("button", name="Show earlier comments")
        await expect(earlier).to_be_visible()

        # Added here: at the end, at once.
        await dashboard.add_comment("Comment 61, from this page")
        shown.append("Comment 61, from this page")
        await expect(bodies).to_have_text(shown)
        # With its icon (Ann's mail is held back by the per-recipient rate limit by now).
        await expect(
            dashboard.icon(dashboard.comment("Comment 61, from this page"))
        ).to_be_visible()

        # Added elsewhere (another tab, the API): the subscription brings it.
        await api.add_comment(task_id, "Comment 62, from elsewhere")
        shown.append("Comment 62, from elsewhere")
        await expect(bodies).to_have_text(shown)
        await screenshot(page, "long-feed-new-comments")

        # The ten earliest, above, and nothing left to load.
        await earlier.click()
        await expect(bodies).to_have_text([f"Comment {n}" for n in range(1, 11)] + shown)
        await expect(earlier).to_be_hidden()
    finally:
        await api.close()
