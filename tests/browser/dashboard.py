"""The dashboard as a test sees it: what a person does on the page (sign in, add a
contact, create a task, comment, open an icon) and where to look for the result.

Every wait is one of Playwright's auto-waiting `expect` assertions: no sleeps.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.browser.support import Beacon
from tests.support.graphql_client import GraphQLClient

# Each wait covers a worker poll, an SMTP exchange and a websocket hop on a busy CI box.
expect.set_options(timeout=15_000)

STATE_LABELS = {"QUEUED": "Queued", "SENT": "Sent", "FAILED": "Send error", "READ": "Read"}


class Dashboard:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    async def open(self) -> None:
        await self.page.goto(f"{self.base_url}/")

    async def sign_in(self, token: str) -> None:
        await self.page.get_by_label("API token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()

    async def signed_in(self, token: str) -> None:
        """Open the page and sign in; waits for the live connection."""
        await self.open()
        await self.sign_in(token)
        await expect(self.page.locator("#live")).to_have_attribute("data-status", "online")

    # ---------------------------------------------------------------- forms

    async def add_contact(self, name: str, email: str) -> None:
        panel = self.page.locator("#new-person-panel")
        if await panel.get_attribute("open") is None:
            await panel.locator("summary").click()
        await panel.get_by_label("Name").fill(name)
        await panel.get_by_label("Email").fill(email)
        await panel.get_by_role("button", name="Add contact").click()
        await expect(panel.get_by_role("status")).to_have_text(f"{name} added.")

    async def create_task(self, title: str, subscribers: list[str]) -> str:
        """Create a task with these people (by name) ticked; returns the new task's id."""
        form = self.page.locator("#new-task-form")
        await form.get_by_label("Title").fill(title)
        for name in subscribers:
            await form.get_by_label(name, exact=False).check()
        await form.get_by_role("button", name="Create task").click()
        await expect(self.page.locator("#feed-title")).to_have_text(title)
        task_id = await self.page.locator(".task-link[aria-current=page]").evaluate(
            "link => link.closest('li').dataset.taskId"
        )
        return str(task_id)

    async def add_comment(self, body: str) -> Locator:
        form = self.page.locator("#comment-form")
        await form.get_by_label("Add a comment").fill(body)
        await form.get_by_role("button", name="Add comment").click()
        comment = self.comment(body)
        await expect(comment).to_be_visible()
        return comment

    async def open_task(self, title: str) -> None:
        await self.page.locator(".task-link", has_text=title).click()
        await expect(self.page.locator("#feed-title")).to_have_text(title)

    # ---------------------------------------------------------------- what is shown

    def comment(self, body: str) -> Locator:
        return self.page.locator("li.comment", has_text=body)

    def task_in_list(self, title: str) -> Locator:
        return self.page.locator("li.task-item", has_text=title)

    @staticmethod
    def icon(item: Locator) -> Locator:
        """The status icon (a button) of a task-list item or a comment."""
        return item.locator(".status-slot button")

    @property
    def feed_task_icon(self) -> Locator:
        return self.page.locator("#feed-task-status button")

    async def expect_state(self, icon: Locator, state: str, count: str | None = None) -> None:
        """The icon shows `state` by its data, its label and (for several recipients) count."""
        label = STATE_LABELS[state]
        await expect(icon).to_have_attribute("data-state", state)
        await expect(icon.locator(".status__label")).to_have_text(label)
        if count is None:
            await expect(icon).to_have_accessible_name(f"{label}, show delivery details")
        else:
            await expect(icon.locator(".status__count")).to_have_text(count)
            of = count.replace("/", " of ")
            await expect(icon).to_have_accessible_name(f"{label} {of}, show delivery details")

    @property
    def dialog(self) -> Locator:
        return self.page.get_by_role("dialog", name="Delivery details")

    def delivery_row(self, address: str) -> Locator:
        return self.dialog.locator("li.delivery", has_text=address)

    @staticmethod
    def fact(row: Locator, field: str) -> Locator:
        """A row's value: queuedAt, sentAt, failedAt, readAt, readConfidence, acceptedBy,
        attempts."""
        return row.locator(f'dd[data-field="{field}"]')


# ------------------------------------------------------------------- the API, for setup


class Api:
    """The same server through GraphQL, for a test's setup and to compare with the page."""

    def __init__(self, beacon: Beacon) -> None:
        self.client = GraphQLClient(beacon.url, beacon.token)

    async def close(self) -> None:
        await self.client.close()

    async def account_id(self) -> str:
        data = await self.client.execute("query { account { id } }")
        return str(data["account"]["id"])

    async def add_contact(self, name: str, email: str) -> str:
        data = await self.client.execute(
            "mutation($name: String!, $email: String) {"
            " addPerson(input: {name: $name, email: $email}) { id } }",
            {"name": name, "email": email},
        )
        return str(data["addPerson"]["id"])

    async def create_task(self, title: str, subscriber_ids: list[str]) -> str:
        data = await self.client.execute(
            "mutation($title: String!, $ids: [ID!]!) {"
            " createTask(input: {title: $title, subscriberIds: $ids}) { id } }",
            {"title": title, "ids": subscriber_ids},
        )
        return str(data["createTask"]["id"])

    async def add_comment(self, task_id: str, body: str) -> str:
        data = await self.client.execute(
            "mutation($taskId: ID!, $body: String!) {"
            " addComment(input: {taskId: $taskId, body: $body}) { id } }",
            {"taskId": task_id, "body": body},
        )
        return str(data["addComment"]["id"])

    async def comment_deliveries(self, task_id: str, body: str) -> list[dict[str, Any]]:
        """A comment's deliveries as the API tells them."""
        data = await self.client.execute(
            "query($id: ID!) { task(id: $id) { comments(includeSystem: true) { edges { node {"
            " body deliveryStatus { deliveries { id address state sentAt readAt } } } } } } }",
            {"id": task_id},
        )
        for edge in data["task"]["comments"]["edges"]:
            if edge["node"]["body"] == body:
                found: list[dict[str, Any]] = edge["node"]["deliveryStatus"]["deliveries"]
                return found
        raise AssertionError(f"no comment {body!r} on task {task_id}")


async def task_with_a_comment(beacon: Beacon, title: str, body: str) -> str:
    """A task (its id) with Ann (a contact) subscribed and one comment, made by the API."""
    api = Api(beacon)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        task_id = await api.create_task(title, [ann])
        await api.add_comment(task_id, body)
    finally:
        await api.close()
    return task_id
