"""What the end-to-end tests share: waiting helpers, the gated SMTP sink, accounts made
with the real CLI, the running server with its client, and the common GraphQL documents.

Fixtures that build these live in conftest.py.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, TypeVar

from common.domain import Plan
from db import accounts as db_accounts
from db.engine import Database
from tests.support.graphql_client import TRANSPORT_WS, GraphQLClient, Subscription
from tests.support.server import ROOT, ServerProcess
from tests.support.smtp_sink import ReceivedMessage, SmtpSink
from tests.support.waiting import WAIT_SECONDS

T = TypeVar("T")


# --------------------------------------------------------------------------- GraphQL documents

DELIVERY_FIELDS = """
fragment DeliveryFields on Delivery {
  id
  address
  channel
  state
  attempts
  queuedAt
  sentAt
  failedAt
  readAt
  openCount
  readConfidence
  acceptedBy
  error { code message permanent }
  events { type at detail }
  recipient { id name }
}
"""

STATUS_FIELDS = """
fragment StatusFields on DeliveryStatus {
  state
  total
  queued
  sent
  failed
  read
}
"""

ADD_CONTACT = """
mutation AddContact($name: String!, $email: String) {
  addPerson(input: {name: $name, kind: CONTACT, email: $email}) { id email }
}
"""

CREATE_TASK = """
mutation CreateTask($title: String!, $subscriberIds: [ID!]!) {
  createTask(input: {title: $title, subscriberIds: $subscriberIds}) { id title }
}
"""

ADD_COMMENT = (
    """
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) {
    id
    deliveryStatus { ...StatusFields }
  }
}
"""
    + STATUS_FIELDS
)

DELIVERY_UPDATED = (
    """
subscription DeliveryUpdated($taskId: ID) {
  deliveryUpdated(taskId: $taskId) {
    taskId
    commentId
    delivery { ...DeliveryFields }
    status { ...StatusFields }
  }
}
"""
    + DELIVERY_FIELDS
    + STATUS_FIELDS
)

DELIVERY = (
    """
query Delivery($id: ID!) {
  delivery(id: $id) { ...DeliveryFields }
}
"""
    + DELIVERY_FIELDS
)

# --------------------------------------------------------------------------- subscriptions


class UpdateLog:
    """A `deliveryUpdated` subscription that keeps every result it reads, oldest first."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.updates: list[dict[str, Any]] = []

    def _record(self, data: Any) -> dict[str, Any]:
        update: dict[str, Any] = data["deliveryUpdated"]
        self.updates.append(update)
        return update

    def states(self, delivery_id: str) -> list[str]:
        """The states shown for one delivery, in the order they arrived."""
        return [u["delivery"]["state"] for u in self.updates if u["delivery"]["id"] == delivery_id]

    async def until(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = WAIT_SECONDS,
    ) -> dict[str, Any]:
        """The latest update kept so far that satisfies `predicate`, or else the next one
        read that does."""
        kept = [update for update in self.updates if predicate(update)]
        if kept:
            return kept[-1]
        # Every result read is kept; the one that satisfied `predicate` is the last.
        await self.subscription.until(lambda data: predicate(self._record(data)), timeout=timeout)
        return self.updates[-1]

    async def until_state(self, delivery_id: str, state: str) -> dict[str, Any]:
        return await self.until(
            lambda u: u["delivery"]["id"] == delivery_id and u["delivery"]["state"] == state
        )

    async def trigger(
        self,
        action: Callable[[], Awaitable[T]],
        caused: Callable[[dict[str, Any], T], bool],
        *,
        tries: int = 3,
        patience: float = 3.0,
    ) -> tuple[T, dict[str, Any]]:
        """Run `action` and wait for an update it `caused`; (the action's value, update).

        Neither websocket protocol tells a client when the server starts listening for
        its subscription, so the first action can come too early, and its update is then
        never sent. In that (rare) case the action runs again, a bounded number of times.
        """
        for _ in range(tries):
            value = await action()
            try:
                update = await self.until(
                    lambda u, value=value: caused(u, value),  # type: ignore[misc]
                    timeout=patience,
                )
            except TimeoutError:
                continue
            return value, update
        raise TimeoutError(f"the subscription showed nothing for {tries} actions")


def caused_by_comment(update: dict[str, Any], comment: dict[str, Any]) -> bool:
    """For `UpdateLog.trigger`: the update is about this comment's deliveries."""
    return bool(update["commentId"] == comment["id"])


# --------------------------------------------------------------------------- the SMTP sink


class GatedSmtpSink(SmtpSink):
    """The test SMTP server (it can hold transactions: `holding()`; keep the block well
    under the server's SMTP_TIMEOUT_SECONDS of 5), finding messages by their text."""

    async def wait_for_text(self, text: str) -> ReceivedMessage:
        """The first message whose plain text contains `text`, once it has arrived."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                for received in self.messages:
                    if text in plain_body(received.message):
                        return received
                await self.wait_for_messages(len(self.messages) + 1, timeout=WAIT_SECONDS)


def plain_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return "" if part is None else str(part.get_content())


def html_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    return "" if part is None else str(part.get_content())


_IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def pixel_urls(document: str) -> list[str]:
    """The `src` of every <img> in an HTML document, unescaped."""
    return [html.unescape(src) for src in _IMG_SRC.findall(document)]


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    account_id: str
    person_id: str
    token: str


def run_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python main.py ARGS` in the project, with the given environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def create_account(env: Mapping[str, str], *, name: str, plan: str, email: str) -> Account:
    """An account made by `python main.py create-account`, from its one line of JSON."""
    result = await asyncio.to_thread(
        run_cli, env, "create-account", "--name", name, "--plan", plan, "--email", email
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    created = json.loads(lines[0])
    for key in ("account_id", "person_id", "token"):
        assert isinstance(created.get(key), str), created
        assert created[key], created
    return Account(created["account_id"], created["person_id"], created["token"])


async def create_account_directly(
    database_url: str, *, name: str, plan: str, email: str
) -> Account:
    """The same account `create-account` makes, written from the test process: the CLI's
    own process costs a second of CPU, and every e2e test needs an account (the CLI is
    still what `Beacon.create_account` and the CLI's own tests run)."""
    db = Database(database_url)
    try:
        async with db.write() as conn:
            created = await db_accounts.create_account(
                conn, name=name, plan=Plan(plan), email=email
            )
    finally:
        await db.dispose()
    return Account(str(created.account_id), str(created.person_id), created.token)


# --------------------------------------------------------------------------- the running server


@dataclass
class Beacon:
    """A running server with one account and a client signed in to it."""

    server: ServerProcess
    sink: GatedSmtpSink
    account: Account
    client: GraphQLClient
    _clients: list[GraphQLClient] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.account.token

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def client_for(self, token: str | None) -> GraphQLClient:
        """Another client of this server (closed with the fixture)."""
        client = GraphQLClient(self.server.base_url, token)
        self._clients.append(client)
        return client

    async def create_account(self, name: str, plan: str = "PREMIUM") -> Account:
        """Another account, made with the CLI while the server runs."""
        email = f"owner-{uuid.uuid4().hex[:8]}@{name.lower()}.test"
        return await create_account(self.server.env, name=name, plan=plan, email=email)

    @asynccontextmanager
    async def subscribe(
        self,
        task_id: str | None = None,
        *,
        protocol: str = TRANSPORT_WS,
        client: GraphQLClient | None = None,
    ) -> AsyncIterator[UpdateLog]:
        """`deliveryUpdated(taskId)` over a websocket, keeping what it reads."""
        async with (client or self.client).subscribe(
            DELIVERY_UPDATED, {"taskId": task_id}, protocol=protocol
        ) as subscription:
            yield UpdateLog(subscription)

    async def add_contact(
        self, name: str, email: str | None, client: GraphQLClient | None = None
    ) -> str:
        data = await (client or self.client).execute(ADD_CONTACT, {"name": name, "email": email})
        return str(data["addPerson"]["id"])

    async def create_task(
        self, title: str, subscriber_ids: list[str], client: GraphQLClient | None = None
    ) -> str:
        data = await (client or self.client).execute(
            CREATE_TASK, {"title": title, "subscriberIds": subscriber_ids}
        )
        return str(data["createTask"]["id"])

    async def add_comment(
        self, task_id: str, body: str, client: GraphQLClient | None = None
    ) -> dict[str, Any]:
        data = await (client or self.client).execute(ADD_COMMENT, {"taskId": task_id, "body": body})
        comment: dict[str, Any] = data["addComment"]
        return comment

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        data = await self.client.execute(DELIVERY, {"id": delivery_id})
        found: dict[str, Any] = data["delivery"]
        return found

    async def close(self) -> None:
        for client in (self.client, *self._clients):
            await client.close()
