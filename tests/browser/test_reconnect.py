"""A dropped websocket: the page says so, reconnects with backoff, and refetches what it
shows, so a change that happened while it was not listening still appears."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from tests.browser.dashboard import Api, Dashboard, task_with_a_comment
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser

WAIT_SECONDS = 15


@dataclass
class FlakyLink:
    """Stands between the page's websocket and the server's (Playwright routes it):
    it can swallow the server's results, cut the connection, and refuse new ones."""

    deaf: bool = False  # swallow `next` messages from the server
    refusing: bool = False  # close new connections at once
    swallowed: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    connections: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def route(self, page_side: WebSocketRoute) -> None:
        if self.refusing:
            self.refused += 1
            self.changed.set()
            await page_side.close(code=1013, reason="try again later")
            return
        server_side = page_side.connect_to_server()
        self.connections.append((page_side, server_side))
        page_side.on_message(server_side.send)
        server_side.on_message(lambda message: self.from_server(page_side, message))

    def from_server(self, page_side: WebSocketRoute, message: str | bytes) -> None:
        parsed = json.loads(message)
        if self.deaf and parsed.get("type") == "next":
            self.swallowed.append(parsed)
            self.changed.set()
            return
        page_side.send(message)

    async def cut(self) -> None:
        page_side, server_side = self.connections[-1]
        await server_side.close()
        await page_side.close(code=1012, reason="service restart")

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (bounded) until `check()` holds: it is asked again after each event."""
        async with asyncio.timeout(WAIT_SECONDS):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def swallowed_states(self, comment_id: str) -> list[str]:
        updates = [message["payload"]["data"]["deliveryUpdated"] for message in self.swallowed]
        return [u["delivery"]["state"] for u in updates if u["commentId"] == comment_id]


async def test_a_dropped_socket_reconnects_and_repairs_what_it_missed(
    browser: BrowserContext, embedded: Beacon
) -> None:
    task_id = await task_with_a_comment(embedded, "Release", "First comment")
    link = FlakyLink()
    page = await browser.new_page()
    await page.route_web_socket(re.compile(r"/graphql$"), link.route)
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await dashboard.open_task("Release")
    await dashboard.expect_state(dashboard.icon(dashboard.comment("First comment")), "SENT")
    await page.evaluate("window.notReloaded = true")

    # The page stops hearing the server: a comment added meanwhile (by the API, as another
    # client would) is sent, and every update about it is lost on the way.
    link.deaf = True
    api = Api(embedded)
    try:
        comment_id = await api.add_comment(task_id, "Added while the page was deaf")
    finally:
        await api.close()
    await link.until(lambda: "SENT" in link.swallowed_states(comment_id))
    missed = dashboard.comment("Added while the page was deaf")
    await expect(missed).to_have_count(0)

    # Then the connection drops, and the first tries to reconnect are refused.
    link.refusing = True
    await link.cut()
    await expect(page.locator("#live")).to_have_text("Offline, reconnecting…")
    await link.until(lambda: link.refused >= 2)
    await screenshot(page, "reconnecting")

    # Back: the page reconnects on its own and refetches the open feed.
    link.deaf = False
    link.refusing = False
    await expect(page.locator("#live")).to_have_text("Live", timeout=30_000)
    await expect(missed).to_be_visible()
    await dashboard.expect_state(dashboard.icon(missed), "SENT")
    assert await page.evaluate("window.notReloaded") is True
    assert len(link.connections) == 2
