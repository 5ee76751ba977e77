"""The dashboard's delivery-rates chart: the week's numbers from `deliveryStats`, drawn
as inline SVG, per channel, and kept current as deliveries change."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, screenshot
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

SENT_TODAY = """
query($since: DateTime!, $until: DateTime!) {
  deliveryStats(since: $since, until: $until, bucket: DAY) { channels { total { sent } } }
}
"""


async def test_the_chart_shows_the_weeks_sends_and_follows_new_ones(
    browser: BrowserContext, embedded: Beacon
) -> None:
    # given: a task to two people and a comment on it: four emails, all sent
    api = Api(embedded)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        bob = await api.add_contact("Bob", "bob@example.test")
        task_id = await api.create_task("Roof", [ann, bob])
        await api.add_comment(task_id, "Tiles arrive Monday")
        now = dt.datetime.now(dt.UTC)
        week = {"since": (now - dt.timedelta(days=6)).isoformat(), "until": now.isoformat()}

        async def sent() -> int:
            data = await api.client.execute(SENT_TODAY, week)
            total = int(sum(c["total"]["sent"] for c in data["deliveryStats"]["channels"]))
            assert total == 4
            return total

        await eventually(sent)
        today = now.date().isoformat()

        # when
        page = await browser.new_page()
        dashboard = Dashboard(page, embedded.url)
        await dashboard.signed_in(embedded.token)

        # then: the legend's totals, the bars' numbers and the chart's text alternative
        panel = page.get_by_role("region", name="Delivery rates")
        await expect(panel).to_be_visible()
        legend = panel.locator("#rates-legend li")
        await expect(legend).to_have_text(
            ["Sent 4", "Failed 0", "Read by people 0", "Opened by machines 0", "Bounced 0"]
        )
        chart = panel.get_by_role("img")
        await expect(chart).to_have_accessible_name(
            "Last 7 days: 4 sent, 0 failed, 0 read by people, 0 opened by machines, 0 bounced"
        )
        days = chart.locator("g.rates__day")
        await expect(days).to_have_count(7)
        await expect(days.last).to_have_attribute("data-day", today)
        sent_bar = days.last.locator('rect[data-outcome="sent"]')
        await expect(sent_bar).to_have_attribute("data-value", "4")
        assert float(await sent_bar.get_attribute("height") or 0) > 0
        # nothing on the six days before
        earlier = chart.locator(f'g.rates__day:not([data-day="{today}"]) rect[data-value="0"]')
        await expect(earlier).to_have_count(6 * 5)

        # and per channel: the only one is EMAIL
        select = panel.get_by_label("Channel")
        await expect(select.locator("option")).to_have_text(["All channels", "EMAIL"])
        await select.select_option("EMAIL")
        await expect(sent_bar).to_have_attribute("data-value", "4")
        await screenshot(page, "rates-chart")

        # when: two more emails are sent
        await api.add_comment(task_id, "And the gutters")

        # then: the chart follows
        await expect(legend.first).to_have_text("Sent 6")
        await expect(days.last.locator('rect[data-outcome="sent"]')).to_have_attribute(
            "data-value", "6"
        )
    finally:
        await api.close()
