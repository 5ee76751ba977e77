"""The account rules of issue 5, seen from outside through GraphQL against the real
server: the history window by plan (with the operator's `set-plan` and `purge`),
automation scenarios and their system comments, tracking consent, the suppression list,
and a delivery's complete history. Read confidence has tests of its own.

Every test runs on SQLite and on PostgreSQL (the `beacon` fixture). Where a test needs
the past, it ages a notification in the database the server shares.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from channels.email.bounce import parse_bounce
from channels.email.verp import verp_token
from db.engine import Database
from db.tables import notifications
from tests.e2e.helpers import (
    DELIVERY,
    Beacon,
    GatedSmtpSink,
    UpdateLog,
    caused_by_comment,
    html_body,
    pixel_urls,
    plain_body,
    run_cli,
)
from tests.support.graphql_client import GraphQLError
from tests.support.reading import MAIL_CLIENT
from tests.support.server import BOUNCE_AUTH
from tests.support.smtp_sink import ReceivedMessage
from tests.support.waiting import WAIT_SECONDS, eventually

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"

# A mail client's image fetch: what a person's open looks like to the pixel.

# --------------------------------------------------------------------------- GraphQL documents

ACCOUNT_PLAN = """
query AccountPlan {
  account { id plan historyDays }
}
"""

UPDATE_ACCOUNT = """
mutation UpdateAccount($input: UpdateAccountInput!) {
  updateAccount(input: $input) {
    showAllRecipients
    requireTrackingConsent
    countMachineOpens
  }
}
"""

ADD_PERSON = """
mutation AddPerson($input: AddPersonInput!) {
  addPerson(input: $input) { id kind email trackingConsent }
}
"""

UPDATE_PERSON = """
mutation UpdatePerson($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { id trackingConsent }
}
"""

ADD_COMMENT = """
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) {
    id
    deliveryStatus { deliveries { id address } }
  }
}
"""

FEED = """
query Feed($id: ID!, $includeSystem: Boolean!) {
  task(id: $id) {
    id
    deliveryStatus { state total }
    comments(includeSystem: $includeSystem) {
      edges {
        node {
          id
          body
          isSystem
          author { id }
          deliveryStatus {
            state
            total
            queued
            sent
            failed
            read
            deliveries { id address state }
          }
        }
      }
    }
  }
}
"""

FEED_DEFAULT = """
query FeedDefault($id: ID!) {
  task(id: $id) {
    comments { edges { node { id isSystem } } }
  }
}
"""

TASK_DELIVERIES = """
query TaskDeliveries($id: ID!) {
  task(id: $id) {
    deliveryStatus { deliveries { id address state events { type } } }
  }
}
"""

DELIVERY_BRIEF = """
query DeliveryBrief($id: ID!) {
  delivery(id: $id) { id state }
}
"""

RESEND = """
mutation Resend($id: ID!) {
  resendDelivery(id: $id) { id state events { type } }
}
"""

SCENARIO_FIELDS = """
fragment ScenarioFields on Scenario {
  id
  name
  trigger
  keyword
  action
  personId
  template
}
"""

CREATE_SCENARIO = (
    """
mutation CreateScenario($input: CreateScenarioInput!) {
  createScenario(input: $input) { ...ScenarioFields }
}
"""
    + SCENARIO_FIELDS
)

SCENARIOS = (
    """
query Scenarios {
  scenarios { ...ScenarioFields }
}
"""
    + SCENARIO_FIELDS
)

DELETE_SCENARIO = """
mutation DeleteScenario($id: ID!) {
  deleteScenario(id: $id)
}
"""

SUPPRESSIONS = """
query Suppressions {
  suppressions { channel address reason createdAt }
}
"""

LIFT_SUPPRESSION = """
mutation LiftSuppression($channel: Channel!, $address: String!) {
  liftSuppression(channel: $channel, address: $address)
}
"""

# --------------------------------------------------------------------------- helpers


async def add_person(
    beacon: Beacon,
    name: str,
    email: str,
    *,
    kind: str = "CONTACT",
    consent: str = "UNKNOWN",
) -> str:
    person_input = {"name": name, "kind": kind, "email": email, "trackingConsent": consent}
    data = await beacon.client.execute(ADD_PERSON, {"input": person_input})
    person = data["addPerson"]
    assert person["trackingConsent"] == consent, person
    return str(person["id"])


async def update_account(beacon: Beacon, **changes: Any) -> dict[str, Any]:
    data = await beacon.client.execute(UPDATE_ACCOUNT, {"input": changes})
    account: dict[str, Any] = data["updateAccount"]
    return account


async def add_comment(beacon: Beacon, task_id: str, body: str) -> dict[str, Any]:
    """The new comment, with `deliveryIds` (in recipient order) added."""
    data = await beacon.client.execute(ADD_COMMENT, {"taskId": task_id, "body": body})
    comment: dict[str, Any] = data["addComment"]
    status = comment["deliveryStatus"]
    comment["deliveryIds"] = [d["id"] for d in status["deliveries"]] if status else []
    return comment


async def feed(beacon: Beacon, task_id: str, *, include_system: bool = False) -> dict[str, Any]:
    data = await beacon.client.execute(FEED, {"id": task_id, "includeSystem": include_system})
    task: dict[str, Any] = data["task"]
    return task


def comment_nodes(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in task["comments"]["edges"]]


def comment_node(task: dict[str, Any], comment_id: str) -> dict[str, Any]:
    (node,) = [node for node in comment_nodes(task) if node["id"] == comment_id]
    return node


async def delivery_when(beacon: Beacon, delivery_id: str, state: str) -> dict[str, Any]:
    """The delivery once the server shows it in `state` (polled: no event to await)."""

    async def check() -> dict[str, Any]:
        delivery = await beacon.delivery(delivery_id)
        assert delivery["state"] == state, delivery
        return delivery

    return await eventually(check)


async def expect_error(beacon: Beacon, document: str, variables: dict[str, Any]) -> GraphQLError:
    with pytest.raises(GraphQLError) as raised:
        await beacon.client.execute(document, variables)
    return raised.value


async def cli(beacon: Beacon, *args: str) -> dict[str, Any]:
    """`python main.py ARGS` on the server's database, while the server runs: its
    result line (the last line of its output; log lines may come before)."""
    result = await asyncio.to_thread(run_cli, beacon.server.env, *args)
    assert result.returncode == 0, result.stderr + result.stdout
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


async def age_notification(
    db: Database, days: int, *, comment_id: str | None = None, task_id: str | None = None
) -> None:
    """Make the notification of this comment (or of this task's creation) `days` old:
    the server shares the database."""
    if comment_id is not None:
        which = notifications.c.comment_id == uuid.UUID(comment_id)
    else:
        assert task_id is not None
        which = sa.and_(
            notifications.c.task_id == uuid.UUID(task_id), notifications.c.comment_id.is_(None)
        )
    async with db.write() as conn:
        result = await conn.execute(
            notifications.update()
            .where(which)
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
        )
    assert result.rowcount == 1


async def emails_with(sink: GatedSmtpSink, text: str, count: int = 1) -> list[ReceivedMessage]:
    """The messages whose plain text contains `text`, once `count` of them have arrived."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            found = [m for m in sink.messages if text in plain_body(m.message)]
            if len(found) >= count:
                return found
            await sink.wait_for_messages(len(sink.messages) + 1, timeout=WAIT_SECONDS)


def by_recipient(messages: list[ReceivedMessage]) -> dict[str, ReceivedMessage]:
    """One message per single recipient, by address."""
    found: dict[str, ReceivedMessage] = {}
    for received in messages:
        (address,) = received.rcpt_tos
        found[address] = received
    return found


def bounce_for(sample: str, return_path: str) -> bytes:
    """A real-world bounce or complaint sample, addressed to our email's return path."""
    raw = (SAMPLES / sample).read_bytes()
    sample_token = parse_bounce(raw).verp_token
    our_token = verp_token(return_path)
    assert sample_token is not None
    assert our_token is not None
    return raw.replace(sample_token.encode(), our_token.encode())


async def post_bounce(beacon: Beacon, raw: bytes) -> dict[str, Any]:
    """An MTA piping a returned message in; the server's answer."""
    async with httpx.AsyncClient(base_url=beacon.base_url, timeout=10) as http:
        response = await http.post("/callbacks/email-bounce", content=raw, headers=BOUNCE_AUTH)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def open_pixel(url: str) -> None:
    """A mail client shows the email's images (the open is stored a moment later)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url, headers={"User-Agent": MAIL_CLIENT})
    assert response.status_code == 200


async def settled(beacon: Beacon, task_id: str) -> None:
    """Once none of the task's own deliveries (its creation's) is queued any more."""

    async def check() -> None:
        task = (await beacon.client.execute(TASK_DELIVERIES, {"id": task_id}))["task"]
        states = [d["state"] for d in task["deliveryStatus"]["deliveries"]]
        assert states, task
        assert "QUEUED" not in states, task

    await eventually(check)


@asynccontextmanager
async def live_updates(beacon: Beacon) -> AsyncIterator[UpdateLog]:
    """`deliveryUpdated` for every task of the account, once it is known to listen: a
    probe comment on a task of its own has shown up. (`UpdateLog.trigger` repeats the
    probe if the first came too early; a repeated probe changes nothing a test counts.)"""
    probe = await add_person(beacon, "Probe", "probe@example.test")
    probe_task = await beacon.create_task("Probe", [probe])
    async with beacon.subscribe() as log:
        await log.trigger(lambda: add_comment(beacon, probe_task, "Probe"), caused_by_comment)
        yield log


def event_types(delivery: dict[str, Any]) -> list[str]:
    return [event["type"] for event in delivery["events"]]


def updates_of(log: UpdateLog, delivery_id: str) -> list[dict[str, Any]]:
    return [u for u in log.updates if u["delivery"]["id"] == delivery_id]


# --------------------------------------------------------------------------- 1. history window


@pytest.mark.parametrize("plan", ["PAID"])
# The worker's own purge runs at its first idle moment, then not again during the test.
@pytest.mark.parametrize("server_env", [{"PURGE_INTERVAL_SECONDS": "3600"}])
async def test_a_delivery_older_than_the_plans_window_is_hidden_until_an_upgrade_shows_it_again_and_the_purge_deletes_what_no_plan_shows(  # noqa: E501
    beacon: Beacon, db: Database
) -> None:
    # Given a PAID account, which shows 30 days of delivery history
    account = (await beacon.client.execute(ACCOUNT_PLAN))["account"]
    assert account == {"id": beacon.account.account_id, "plan": "PAID", "historyDays": 30}

    # And a task with three comments to a contact, all sent
    ann = await add_person(beacon, "Ann", "ann@example.test")
    task_id = await beacon.create_task("Renewal", [ann])
    old = await add_comment(beacon, task_id, "Contract signed")
    ancient = await add_comment(beacon, task_id, "Kick-off call")
    recent = await add_comment(beacon, task_id, "Invoice sent")
    (old_delivery,) = old["deliveryIds"]
    (ancient_delivery,) = ancient["deliveryIds"]
    (recent_delivery,) = recent["deliveryIds"]
    for delivery_id in (old_delivery, ancient_delivery, recent_delivery):
        await delivery_when(beacon, delivery_id, "SENT")
    await settled(beacon, task_id)

    # When the task's own notification and the first comment's are 31 days old
    await age_notification(db, 31, task_id=task_id)
    await age_notification(db, 31, comment_id=old["id"])

    # Then their deliveries are not shown: the task and that comment have no icon, while
    # the newer comments keep theirs
    task = await feed(beacon, task_id)
    assert task["deliveryStatus"] is None
    assert comment_node(task, old["id"])["deliveryStatus"] is None
    recent_status = comment_node(task, recent["id"])["deliveryStatus"]
    assert recent_status["deliveries"] == [
        {"id": recent_delivery, "address": "ann@example.test", "state": "SENT"}
    ]
    assert comment_node(task, ancient["id"])["deliveryStatus"]["total"] == 1

    # And asking for it by id, or resending it, says clearly that it is past the window
    for document in (DELIVERY, RESEND):
        error = await expect_error(beacon, document, {"id": old_delivery})
        assert error.codes == ["HISTORY_EXPIRED"]
        assert "30 days" in error.errors[0]["message"]

    # When the operator moves the account to PREMIUM with the CLI (the server runs on)
    changed = await cli(
        beacon, "set-plan", "--account", beacon.account.account_id, "--plan", "PREMIUM"
    )
    assert changed == {"account_id": beacon.account.account_id, "plan": "PREMIUM"}

    # Then the account shows 365 days, and the 31-day-old delivery is shown again
    account = (await beacon.client.execute(ACCOUNT_PLAN))["account"]
    assert (account["plan"], account["historyDays"]) == ("PREMIUM", 365)
    task = await feed(beacon, task_id)
    assert task["deliveryStatus"] == {"state": "SENT", "total": 1}
    old_status = comment_node(task, old["id"])["deliveryStatus"]
    assert old_status["deliveries"] == [
        {"id": old_delivery, "address": "ann@example.test", "state": "SENT"}
    ]
    assert (await beacon.delivery(old_delivery))["state"] == "SENT"

    # When another comment's notification is 400 days old: past every plan's window
    await age_notification(db, 400, comment_id=ancient["id"])

    # Then PREMIUM does not show it either
    task = await feed(beacon, task_id)
    assert comment_node(task, ancient["id"])["deliveryStatus"] is None
    error = await expect_error(beacon, DELIVERY, {"id": ancient_delivery})
    assert error.codes == ["HISTORY_EXPIRED"]
    assert "365 days" in error.errors[0]["message"]

    # When the operator runs the purge
    assert await cli(beacon, "purge") == {"notifications_deleted": 1}

    # Then that delivery is gone, while the task and all its comments stay
    gone = await beacon.client.execute(DELIVERY_BRIEF, {"id": ancient_delivery})
    assert gone == {"delivery": None}
    task = await feed(beacon, task_id)
    assert [node["id"] for node in comment_nodes(task)] == [old["id"], ancient["id"], recent["id"]]
    assert [node["body"] for node in comment_nodes(task)] == [
        "Contract signed",
        "Kick-off call",
        "Invoice sent",
    ]
    assert comment_node(task, ancient["id"])["deliveryStatus"] is None
    # And what a plan still shows is kept
    assert comment_node(task, old["id"])["deliveryStatus"]["total"] == 1
    assert comment_node(task, recent["id"])["deliveryStatus"]["total"] == 1
    assert task["deliveryStatus"] == {"state": "SENT", "total": 1}
    # And a second purge has nothing left to do
    assert await cli(beacon, "purge") == {"notifications_deleted": 0}

    # When the operator moves the account to FREE, it has no delivery history at all
    await cli(beacon, "set-plan", "--account", beacon.account.account_id, "--plan", "FREE")
    account = (await beacon.client.execute(ACCOUNT_PLAN))["account"]
    assert (account["plan"], account["historyDays"]) == ("FREE", None)


@pytest.mark.parametrize("plan", ["PAID"])
@pytest.mark.parametrize("server_env", [{"PURGE_INTERVAL_SECONDS": "0.2"}])
async def test_the_subscription_pushes_nothing_about_a_delivery_outside_the_window_and_the_worker_purges_on_its_own(  # noqa: E501
    beacon: Beacon, db: Database
) -> None:
    # Given a task whose comment's email was sent 31 days ago, and another task
    olga = await add_person(beacon, "Olga", "olga@example.test")
    nick = await add_person(beacon, "Nick", "nick@example.test")
    archive = await beacon.create_task("Archive", [olga])
    launch = await beacon.create_task("Launch", [nick])
    old = await add_comment(beacon, archive, "Filed away")
    (old_delivery,) = old["deliveryIds"]
    await delivery_when(beacon, old_delivery, "SENT")
    (old_email,) = await emails_with(beacon.sink, "Filed away")
    (old_pixel,) = pixel_urls(html_body(old_email.message))
    await settled(beacon, archive)
    await age_notification(db, 31, comment_id=old["id"])

    async with live_updates(beacon) as log:
        # And the subscription shows a fresh comment's delivery
        first = await add_comment(beacon, launch, "T minus two")
        await log.until_state(first["deliveryIds"][0], "SENT")

        # When the old email is opened, and then bounces for good (both are applied)
        await open_pixel(old_pixel)
        bounced = await post_bounce(
            beacon, bounce_for("postfix_hard_5.1.1.eml", old_email.envelope_from)
        )
        assert bounced["deliveries"] == [old_delivery]

        # And a fresh delivery changes after that
        fresh = await add_comment(beacon, launch, "T minus one")
        await log.until_state(fresh["deliveryIds"][0], "SENT")

    # Then the subscription showed the fresh deliveries, and nothing of the old one
    # (the feed hands out updates in the order of their events: the old delivery's
    # came first)
    assert updates_of(log, old_delivery) == []
    assert [u for u in log.updates if u["taskId"] == archive] == []
    assert {first["id"], fresh["id"]} <= {u["commentId"] for u in log.updates}

    # When the old notification is past the longest window, the worker purges it by
    # itself (every PURGE_INTERVAL_SECONDS): its delivery is gone, the comment stays
    await age_notification(db, 400, comment_id=old["id"])

    async def purged() -> None:
        assert await beacon.client.execute(DELIVERY_BRIEF, {"id": old_delivery}) == {
            "delivery": None
        }

    await eventually(purged)
    task = await feed(beacon, archive)
    assert [(node["id"], node["deliveryStatus"]) for node in comment_nodes(task)] == [
        (old["id"], None)
    ]
    assert (await beacon.delivery(fresh["deliveryIds"][0]))["state"] == "SENT"


# --------------------------------------------------------------------------- 2. scenarios


async def test_scenarios_are_created_listed_and_deleted_and_incomplete_ones_are_refused(
    beacon: Beacon,
) -> None:
    pat = await add_person(beacon, "Pat", "pat@acme.test", kind="EMPLOYEE")
    other = await beacon.create_account("Other")
    base = {"name": "Escalate", "action": "EMAIL_TASK_CONTACTS", "template": "{comment}"}

    # When scenarios are incomplete or name a person the account does not have
    refused = [
        ({**base, "trigger": "KEYWORD"}, "BAD_USER_INPUT"),
        ({**base, "trigger": "KEYWORD", "keyword": "   "}, "BAD_USER_INPUT"),
        ({**base, "trigger": "COMMENT_ADDED", "action": "EMAIL_PERSON"}, "BAD_USER_INPUT"),
        (
            {**base, "trigger": "COMMENT_ADDED", "action": "EMAIL_PERSON", "personId": "nobody"},
            "BAD_USER_INPUT",
        ),
        (
            {
                **base,
                "trigger": "COMMENT_ADDED",
                "action": "EMAIL_PERSON",
                "personId": str(uuid.uuid4()),
            },
            "NOT_FOUND",
        ),
        (
            {
                **base,
                "trigger": "COMMENT_ADDED",
                "action": "EMAIL_PERSON",
                "personId": other.person_id,
            },
            "NOT_FOUND",
        ),
        ({**base, "trigger": "TASK_CREATED", "name": "  "}, "BAD_USER_INPUT"),
        ({**base, "trigger": "TASK_CREATED", "template": " "}, "BAD_USER_INPUT"),
    ]
    for scenario_input, code in refused:
        error = await expect_error(beacon, CREATE_SCENARIO, {"input": scenario_input})
        # Then each is refused with a code a client can act on
        assert error.codes == [code], scenario_input

    # And nothing was stored
    assert (await beacon.client.execute(SCENARIOS))["scenarios"] == []

    # When complete ones are created
    notify = (
        await beacon.client.execute(
            CREATE_SCENARIO,
            {
                "input": {
                    "name": "Notify client",
                    "trigger": "TASK_CREATED",
                    "action": "EMAIL_TASK_CONTACTS",
                    "template": "New task: {task}",
                }
            },
        )
    )["createScenario"]
    escalate = (
        await beacon.client.execute(
            CREATE_SCENARIO,
            {
                "input": {
                    "name": "Escalate",
                    "trigger": "KEYWORD",
                    "keyword": "urgent",
                    "action": "EMAIL_PERSON",
                    "personId": pat,
                    "template": "{comment} (on {task})",
                }
            },
        )
    )["createScenario"]

    # Then they come back as given, and are listed
    assert notify == {
        "id": notify["id"],
        "name": "Notify client",
        "trigger": "TASK_CREATED",
        "keyword": None,
        "action": "EMAIL_TASK_CONTACTS",
        "personId": None,
        "template": "New task: {task}",
    }
    assert escalate == {
        "id": escalate["id"],
        "name": "Escalate",
        "trigger": "KEYWORD",
        "keyword": "urgent",
        "action": "EMAIL_PERSON",
        "personId": pat,
        "template": "{comment} (on {task})",
    }
    listed = (await beacon.client.execute(SCENARIOS))["scenarios"]
    assert sorted(listed, key=lambda s: s["name"]) == [escalate, notify]

    # And another account sees none of them, and cannot delete them
    other_client = beacon.client_for(other.token)
    assert (await other_client.execute(SCENARIOS))["scenarios"] == []
    with pytest.raises(GraphQLError) as raised:
        await other_client.execute(DELETE_SCENARIO, {"id": escalate["id"]})
    assert raised.value.codes == ["NOT_FOUND"]

    # When one is deleted
    deleted = await beacon.client.execute(DELETE_SCENARIO, {"id": notify["id"]})

    # Then it is gone, and deleting it again finds nothing
    assert deleted == {"deleteScenario": True}
    assert (await beacon.client.execute(SCENARIOS))["scenarios"] == [escalate]
    error = await expect_error(beacon, DELETE_SCENARIO, {"id": notify["id"]})
    assert error.codes == ["NOT_FOUND"]


async def test_a_scenario_that_fires_writes_a_system_comment_with_its_own_icon_hidden_by_default_and_never_triggers_itself(  # noqa: E501
    beacon: Beacon,
) -> None:
    carol = await add_person(beacon, "Carol", "carol@client.test")
    pat = await add_person(beacon, "Pat", "pat@acme.test", kind="EMPLOYEE")

    # Given three scenarios. The keyword one's name holds its keyword, so its own system
    # comment ("Scenario 'Escalate urgent' sent …") would fire it again if system
    # comments could trigger scenarios.
    scenarios = [
        ("Notify client", "TASK_CREATED", None, "EMAIL_TASK_CONTACTS", None, "New task: {task}"),
        ("Echo to Pat", "COMMENT_ADDED", None, "EMAIL_PERSON", pat, "Pat, on {task}: {comment}"),
        (
            "Escalate urgent",
            "KEYWORD",
            "urgent",
            "EMAIL_TASK_CONTACTS",
            None,
            "URGENT on {task}: {comment}",
        ),
    ]
    created: dict[str, str] = {}
    for name, trigger, keyword, action, person_id, template in scenarios:
        data = await beacon.client.execute(
            CREATE_SCENARIO,
            {
                "input": {
                    "name": name,
                    "trigger": trigger,
                    "keyword": keyword,
                    "action": action,
                    "personId": person_id,
                    "template": template,
                }
            },
        )
        created[name] = data["createScenario"]["id"]

    # When a task is created for Carol
    task_id = await beacon.create_task("Website", [carol])

    # Then the scenario emails her the rendered template, not the system comment's line
    (scenario_email,) = await emails_with(beacon.sink, "New task: Website")
    assert scenario_email.rcpt_tos == ("carol@client.test",)
    assert "Scenario '" not in plain_body(scenario_email.message)
    assert "Scenario '" not in html_body(scenario_email.message)

    # And the feed leaves the system comment out by default
    default = await beacon.client.execute(FEED_DEFAULT, {"id": task_id})
    assert default["task"]["comments"]["edges"] == []
    assert comment_nodes(await feed(beacon, task_id)) == []

    # And includeSystem shows it: written by no one, with its own icon
    async def system_comment_sent() -> dict[str, Any]:
        (node,) = comment_nodes(await feed(beacon, task_id, include_system=True))
        assert node["deliveryStatus"]["state"] == "SENT", node
        return node

    notified = await eventually(system_comment_sent)
    assert notified["isSystem"] is True
    assert notified["author"] is None
    assert notified["body"] == "Scenario 'Notify client' sent an email to carol@client.test."
    assert notified["deliveryStatus"]["total"] == 1
    assert [d["address"] for d in notified["deliveryStatus"]["deliveries"]] == ["carol@client.test"]

    async with live_updates(beacon) as log:
        # When a user comments (the COMMENT_ADDED scenario fires in the same transaction)
        first = await add_comment(beacon, task_id, "Draft is up")
        nodes = comment_nodes(await feed(beacon, task_id, include_system=True))
        (echo,) = [n for n in nodes if n["body"].startswith("Scenario 'Echo to Pat'")]
        assert echo["body"] == "Scenario 'Echo to Pat' sent an email to pat@acme.test."

        # Then the subscription pushes the system comment's delivery changes too
        update = await log.until(
            lambda u: u["commentId"] == echo["id"] and u["delivery"]["state"] == "SENT"
        )
        assert update["delivery"]["address"] == "pat@acme.test"
        assert update["status"]["state"] == "SENT"
        assert update["taskId"] == task_id
        assert await emails_with(beacon.sink, "Pat, on Website: Draft is up")

        # When a comment holds the keyword
        second = await add_comment(beacon, task_id, "This is URGENT, please")

        # Then both comment scenarios email their rendered templates
        (urgent_email,) = await emails_with(beacon.sink, "URGENT on Website: This is URGENT")
        assert urgent_email.rcpt_tos == ("carol@client.test",)
        (echo_email,) = await emails_with(beacon.sink, "Pat, on Website: This is URGENT")
        assert echo_email.rcpt_tos == ("pat@acme.test",)

    # And each scenario fired once per user comment, never for a system comment
    nodes = comment_nodes(await feed(beacon, task_id, include_system=True))
    user_comments = [n["id"] for n in nodes if not n["isSystem"]]
    assert user_comments == [first["id"], second["id"]]
    fired = collections.Counter(
        n["body"].split("'")[1] for n in nodes if n["isSystem"] and n["author"] is None
    )
    assert fired == {"Notify client": 1, "Echo to Pat": 2, "Escalate urgent": 1}
    assert all(n["isSystem"] == n["body"].startswith("Scenario '") for n in nodes)
    assert not any("Scenario '" in plain_body(m.message) for m in beacon.sink.messages)

    # And by default the feed still shows the user's comments alone
    assert [n["id"] for n in comment_nodes(await feed(beacon, task_id))] == user_comments

    # When the COMMENT_ADDED scenario is deleted, a comment no longer fires it
    await beacon.client.execute(DELETE_SCENARIO, {"id": created["Echo to Pat"]})
    await add_comment(beacon, task_id, "Final version")
    nodes = comment_nodes(await feed(beacon, task_id, include_system=True))
    assert sum(n["body"].startswith("Scenario 'Echo to Pat'") for n in nodes) == 2
    assert len(nodes) == 7  # 3 user comments, 4 system comments


# --------------------------------------------------------------------------- 3. tracking consent


async def test_tracking_consent_decides_which_emails_carry_a_pixel(beacon: Beacon) -> None:
    # Given contacts who denied tracking, did not say, and granted it
    dee = await add_person(beacon, "Dee", "dee@example.test", consent="DENIED")
    una = await add_person(beacon, "Una", "una@example.test")
    gus = await add_person(beacon, "Gus", "gus@example.test", consent="GRANTED")
    addresses = ["dee@example.test", "una@example.test", "gus@example.test"]
    # And every open counts as a read, however early (read confidence is tested elsewhere)
    assert (await update_account(beacon, countMachineOpens=True))["countMachineOpens"] is True

    # When a task is created for the three of them
    task_id = await beacon.create_task("Audit", [dee, una, gus])

    # Then Dee's email carries no pixel, and the others' one each
    emails = by_recipient(await emails_with(beacon.sink, "Audit", 3))
    assert sorted(emails) == sorted(addresses)
    assert "<img" not in html_body(emails["dee@example.test"].message)
    pixels = {address: pixel_urls(html_body(m.message)) for address, m in emails.items()}
    assert {address: len(urls) for address, urls in pixels.items()} == {
        "dee@example.test": 0,
        "una@example.test": 1,
        "gus@example.test": 1,
    }

    # When Una and Gus open theirs
    await open_pixel(pixels["una@example.test"][0])
    await open_pixel(pixels["gus@example.test"][0])

    # Then their opens are recorded, while Dee's delivery stays SENT
    async def after_opens() -> dict[str, dict[str, Any]]:
        task = (await beacon.client.execute(TASK_DELIVERIES, {"id": task_id}))["task"]
        found = {d["address"]: d for d in task["deliveryStatus"]["deliveries"]}
        for address in ("una@example.test", "gus@example.test"):
            assert "opened" in event_types(found[address]), found[address]
        assert found["dee@example.test"]["state"] == "SENT", found
        return found

    deliveries = await eventually(after_opens)
    assert "opened" not in event_types(deliveries["dee@example.test"])
    assert deliveries["una@example.test"]["state"] == "READ"

    # When the account requires consent before it tracks anyone
    account = await update_account(beacon, requireTrackingConsent=True)
    assert account["requireTrackingConsent"] is True
    await add_comment(beacon, task_id, "Second look")

    # Then only Gus, who granted it, gets a pixel
    emails = by_recipient(await emails_with(beacon.sink, "Second look", 3))
    assert {a: len(pixel_urls(html_body(m.message))) for a, m in emails.items()} == {
        "dee@example.test": 0,
        "una@example.test": 0,
        "gus@example.test": 1,
    }
    assert "<img" not in html_body(emails["una@example.test"].message)

    # When Una grants consent
    data = await beacon.client.execute(
        UPDATE_PERSON, {"id": una, "input": {"trackingConsent": "GRANTED"}}
    )
    assert data["updatePerson"] == {"id": una, "trackingConsent": "GRANTED"}
    await add_comment(beacon, task_id, "Third look")

    # Then her next email carries a pixel
    emails = by_recipient(await emails_with(beacon.sink, "Third look", 3))
    assert {a: len(pixel_urls(html_body(m.message))) for a, m in emails.items()} == {
        "dee@example.test": 0,
        "una@example.test": 1,
        "gus@example.test": 1,
    }

    # When one email goes to all recipients and one of them (Dee) denied tracking
    assert (await update_account(beacon, showAllRecipients=True))["showAllRecipients"] is True
    await add_comment(beacon, task_id, "All together")

    # Then the single shared email carries no pixel at all
    (shared,) = await emails_with(beacon.sink, "All together")
    assert sorted(shared.rcpt_tos) == sorted(addresses)
    assert "<img" not in html_body(shared.message)

    # And a shared email to people who all granted it carries the one pixel
    await beacon.create_task("Follow-up", [una, gus])
    (granted,) = await emails_with(beacon.sink, "Follow-up")
    assert sorted(granted.rcpt_tos) == ["gus@example.test", "una@example.test"]
    assert len(pixel_urls(html_body(granted.message))) == 1


# --------------------------------------------------------------------------- 4. suppression


async def test_a_hard_bounce_or_a_spam_complaint_suppresses_the_address_until_the_suppression_is_lifted(  # noqa: E501
    beacon: Beacon,
) -> None:
    bob = await add_person(beacon, "Bob", "bob@example.test")
    lena = await add_person(beacon, "Lena", "lena@example.test")
    invoice = await beacon.create_task("Invoice", [bob])
    report = await beacon.create_task("Report", [lena])
    await settled(beacon, invoice)

    async with live_updates(beacon) as log:
        # Given an email to Bob was accepted by the relay
        first = await add_comment(beacon, invoice, "Invoice attached")
        (first_delivery,) = first["deliveryIds"]
        await log.until_state(first_delivery, "SENT")
        (first_email,) = await emails_with(beacon.sink, "Invoice attached")

        # When his server bounces it for good (a real DSN, piped in by the MTA)
        answer = await post_bounce(
            beacon, bounce_for("postfix_hard_5.1.1.eml", first_email.envelope_from)
        )
        assert (answer["kind"], answer["deliveries"]) == ("hard", [first_delivery])
        await log.until_state(first_delivery, "FAILED")

        # Then his address is on the suppression list, with the reason
        (suppression,) = (await beacon.client.execute(SUPPRESSIONS))["suppressions"]
        assert (suppression["channel"], suppression["address"]) == ("EMAIL", "bob@example.test")
        reason = suppression["reason"]
        assert reason.startswith("hard bounce: "), reason
        assert "5.1.1" in reason
        assert "User unknown" in reason
        assert suppression["createdAt"]

        # When the next comment is written
        tried_before = beacon.sink.rcpt_attempts.count("bob@example.test")
        second = await add_comment(beacon, invoice, "Friendly reminder")
        (second_delivery,) = second["deliveryIds"]

        # Then its delivery fails at once, with the original reason, and is not sent
        failed = (await log.until_state(second_delivery, "FAILED"))["delivery"]
        assert failed["error"] == {"code": "SUPPRESSED", "message": reason, "permanent": True}
        assert failed["sentAt"] is None
        assert event_types(failed) == ["queued", "suppressed"]
        assert failed["events"][-1]["detail"] == reason
        assert beacon.sink.rcpt_attempts.count("bob@example.test") == tried_before
        assert not [m for m in beacon.sink.messages if "Friendly reminder" in plain_body(m.message)]

        # When the suppression is lifted (addresses compare without case)
        lifted = await beacon.client.execute(
            LIFT_SUPPRESSION, {"channel": "EMAIL", "address": "Bob@Example.TEST"}
        )

        # Then the list is empty, lifting again finds nothing, and the next comment is sent
        assert lifted == {"liftSuppression": True}
        assert (await beacon.client.execute(SUPPRESSIONS))["suppressions"] == []
        again = await beacon.client.execute(
            LIFT_SUPPRESSION, {"channel": "EMAIL", "address": "bob@example.test"}
        )
        assert again == {"liftSuppression": False}
        third = await add_comment(beacon, invoice, "Paid, thanks")
        await log.until_state(third["deliveryIds"][0], "SENT")
        (third_email,) = await emails_with(beacon.sink, "Paid, thanks")
        assert third_email.rcpt_tos == ("bob@example.test",)

        # Given an email to Lena was accepted
        fourth = await add_comment(beacon, report, "Numbers are in")
        (fourth_delivery,) = fourth["deliveryIds"]
        await log.until_state(fourth_delivery, "SENT")
        (fourth_email,) = await emails_with(beacon.sink, "Numbers are in")

        # When her provider reports it as spam (an ARF report to our bounce path)
        answer = await post_bounce(
            beacon, bounce_for("arf_abuse_yahoo.eml", fourth_email.envelope_from)
        )
        assert (answer["kind"], answer["deliveries"]) == ("complaint", [fourth_delivery])
        complained = await log.until(
            lambda u: (
                u["delivery"]["id"] == fourth_delivery
                and "suppressed" in event_types(u["delivery"])
            )
        )
        assert event_types(complained["delivery"])[-2:] == ["complaint", "suppressed"]

        # Then her address is suppressed too, with the complaint as the reason
        (suppression,) = (await beacon.client.execute(SUPPRESSIONS))["suppressions"]
        assert (suppression["channel"], suppression["address"]) == ("EMAIL", "lena@example.test")
        assert suppression["reason"].startswith("spam complaint"), suppression

        # And her next delivery fails at once with that reason
        fifth = await add_comment(beacon, report, "Updated numbers")
        failed = (await log.until_state(fifth["deliveryIds"][0], "FAILED"))["delivery"]
    assert failed["error"] == {
        "code": "SUPPRESSED",
        "message": suppression["reason"],
        "permanent": True,
    }
    assert not [m for m in beacon.sink.messages if "Updated numbers" in plain_body(m.message)]


# --------------------------------------------------------------------------- 5. complete history


async def test_a_deliverys_events_tell_its_whole_story_in_order(beacon: Beacon) -> None:
    eve = await add_person(beacon, "Eve", "eve@example.test")
    # Every open counts as a read, however early (read confidence is tested elsewhere)
    await update_account(beacon, countMachineOpens=True)
    task_id = await beacon.create_task("Onboarding", [eve])

    async with live_updates(beacon) as log:
        # Given a comment's email was sent
        comment = await add_comment(beacon, task_id, "Welcome aboard")
        (delivery_id,) = comment["deliveryIds"]
        await log.until_state(delivery_id, "SENT")
        (email,) = await emails_with(beacon.sink, "Welcome aboard")

        # When it bounces for good (which suppresses the address)
        await post_bounce(beacon, bounce_for("postfix_hard_5.1.1.eml", email.envelope_from))
        await log.until_state(delivery_id, "FAILED")

        # And a resend is refused while the address is suppressed (it would only fail)
        with pytest.raises(GraphQLError) as refused:
            await beacon.client.execute(RESEND, {"id": delivery_id})
        assert refused.value.codes == ["ADDRESS_SUPPRESSED"]

        # And it is resent once the suppression is lifted
        lifted = await beacon.client.execute(
            LIFT_SUPPRESSION, {"channel": "EMAIL", "address": "eve@example.test"}
        )
        assert lifted == {"liftSuppression": True}
        await beacon.client.execute(RESEND, {"id": delivery_id})
        await log.until(
            lambda u: (
                u["delivery"]["id"] == delivery_id and event_types(u["delivery"]).count("sent") == 2
            )
        )
        (_, again) = await emails_with(beacon.sink, "Welcome aboard", 2)
        assert again.message_id == email.message_id

        # And Eve opens it
        (pixel,) = pixel_urls(html_body(again.message))
        await open_pixel(pixel)
        await log.until(
            lambda u: u["delivery"]["id"] == delivery_id and "opened" in event_types(u["delivery"])
        )

    # Then its events tell the whole story, in order, as the popup reads it
    delivery = await beacon.delivery(delivery_id)
    assert event_types(delivery) == [
        "queued",
        "sent",
        "bounced",
        "suppressed",
        "resend_requested",
        "sent",
        "opened",
    ]
    events = delivery["events"]
    times = [dt.datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times)
    # Each send names the server's reply; the bounce and the suppression give the reason
    sent = [event["detail"] for event in events if event["type"] == "sent"]
    assert all(detail.startswith("250 ") for detail in sent), sent
    bounced = events[2]["detail"]
    assert "5.1.1" in bounced
    assert "User unknown" in bounced
    assert events[3]["detail"] == f"hard bounce: {bounced}"
    assert events[0]["detail"] is None
    # And the delivery itself ends as the last events say: sent again, and read
    assert delivery["state"] == "READ"
    assert delivery["error"] is None
    assert delivery["attempts"] == 1
