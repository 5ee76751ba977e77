"""GraphiQL at /graphql works with no internet: its scripts come from this server."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocket, expect

from tests.browser.dashboard import Api
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser

RUN = "Execute query (Ctrl-Enter)"


async def offline(browser: BrowserContext) -> list[str]:
    """Abort every request that leaves this machine, as on a laptop with no network;
    returns the list of what was refused."""
    refused: list[str] = []

    async def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    await browser.route("**/*", only_loopback)
    return refused


async def set_operation(page: Page, document: str) -> None:
    """Replace the query editor's text (through CodeMirror: typing would auto-close
    brackets), and wait for GraphiQL to have parsed it: it does so a moment after each
    change, and until then the Run button would run the previous operation."""
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await expect(editor).to_be_visible()
    await editor.evaluate("(node, text) => node.CodeMirror.setValue(text)", document)
    await page.wait_for_function(
        "text => localStorage.getItem('graphiql:query') === text", arg=document
    )


async def test_graphiql_runs_a_query_and_a_subscription_with_the_network_blocked(
    browser: BrowserContext, embedded: Beacon
) -> None:
    api = Api(embedded)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        task_id = await api.create_task("Explored offline", [ann])
    finally:
        await api.close()
    refused = await offline(browser)

    page = await browser.new_page()
    await page.goto(f"{embedded.url}/graphql")
    await expect(page.get_by_role("button", name=RUN)).to_be_visible()

    # The token box: the API answers who it belongs to.
    await page.get_by_label("API token").fill(embedded.token)
    await page.get_by_role("button", name="Use token").click()
    await expect(page.locator("#token-status")).to_have_text("Signed in as demo (Demo, PREMIUM).")

    # A query over HTTP, with the token as its Authorization header.
    await set_operation(page, "query Titles { tasks(first: 5) { edges { node { id title } } } }")
    await page.get_by_role("button", name=RUN).click()
    result = page.locator(".graphiql-response")
    await expect(result).to_contain_text('"title": "Explored offline"')

    # A subscription over the websocket (graphql-ws in the vendored bundle), signed in
    # by the same token in connection_init.
    await set_operation(
        page,
        "subscription Live { deliveryUpdated { taskId commentId delivery { address state } } }",
    )
    subscribed = asyncio.Event()

    def sent(frame: str | bytes) -> None:
        if '"subscribe"' in str(frame):
            subscribed.set()

    def watch(socket: WebSocket) -> None:
        socket.on("framesent", sent)

    page.on("websocket", watch)
    await page.get_by_role("button", name=RUN).click()
    await asyncio.wait_for(subscribed.wait(), timeout=15)

    # A change made elsewhere (over HTTP by this test) arrives in the result pane. The
    # server may still be joining the live feed when the first comment lands; a second
    # one is added only if the first was not seen.
    client = httpx.AsyncClient(base_url=embedded.url, timeout=15)
    try:
        for attempt in range(3):
            response = await client.post(
                "/graphql",
                headers={"Authorization": f"Bearer {embedded.token}"},
                json={
                    "query": "mutation($t: ID!, $b: String!) {"
                    " addComment(input: {taskId: $t, body: $b}) { id } }",
                    "variables": {"t": task_id, "b": f"Seen live ({attempt})"},
                },
            )
            comment_id = response.json()["data"]["addComment"]["id"]
            try:
                await expect(result).to_contain_text(f'"commentId": "{comment_id}"', timeout=5_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise
    finally:
        await client.aclose()
    await expect(result).to_contain_text('"address": "ann@example.test"')
    await screenshot(page, "graphiql-offline-subscription")

    assert refused == [], f"GraphiQL asked for files from elsewhere: {refused}"


async def test_graphiql_takes_the_dashboard_token_and_is_served_with_a_strict_policy(
    browser: BrowserContext, embedded: Beacon
) -> None:
    await offline(browser)
    page = await browser.new_page()
    # Signed in on the dashboard: the same origin's localStorage holds the token.
    await page.goto(f"{embedded.url}/")
    await page.evaluate("token => localStorage.setItem('beacon.token', token)", embedded.token)

    response = await page.goto(f"{embedded.url}/graphql")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "http" not in policy  # no other origin, for anything
    await expect(page.get_by_label("API token")).to_have_value(embedded.token)
    await expect(page.locator("#token-status")).to_have_text("Signed in as demo (Demo, PREMIUM).")

    await set_operation(page, "{ viewer { name } }")
    await page.get_by_role("button", name=RUN).click()
    await expect(page.locator(".graphiql-response")).to_contain_text('"name": "demo"')

    # Its dialogs open without a policy violation (the fixture fails the test on one).
    await page.get_by_role("button", name="Open settings dialog").click()
    await expect(page.get_by_role("dialog")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
