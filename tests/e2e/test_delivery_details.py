"""What a delivery and an icon tell beyond the state (issue 13, items 12, 14 and 15): the
suppression that stops a resend, the rate limit's hold, and a task's icon over its
comments too, live. Through GraphQL against the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import Any

import pytest

from db import suppressions as db_suppressions
from db.engine import Database
from tests.e2e.helpers import Beacon, UpdateLog
from tests.support.graphql_client import GraphQLError
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

STATUS = "state total queued sent failed read heldBack heldUntil"

TASK_DELIVERIES = """
query Task($id: ID!) {
  task(id: $id) {
    deliveryStatus { deliveries { id state address events { type } } }
  }
}
"""

DELIVERY = """
query Delivery($id: ID!) {
  delivery(id: $id) {
    id state
    suppression { channel address reason createdAt }
    events { type }
  }
}
"""

RESEND = "mutation Resend($id: ID!) { resendDelivery(id: $id) { id state } }"

LIFT = """
mutation Lift($channel: Channel!, $address: String!) {
  liftSuppression(channel: $channel, address: $address)
}
"""

SUPPRESSIONS = "query { suppressions { channel address reason createdAt } }"

COMMENT_STATUS = f"""
query Comments($id: ID!) {{
  task(id: $id) {{
    comments {{ edges {{ node {{
      body
      deliveryStatus {{ {STATUS} deliveries {{ id state heldUntil sentAt }} }}
    }} }} }}
    deliveryStatus {{ deliveries {{ sentAt }} }}
    overallStatus {{ {STATUS} }}
  }}
}}
"""

OVERALL = f"""
query Overall($id: ID!) {{
  task(id: $id) {{
    deliveryStatus {{ {STATUS} }}
    overallStatus {{ {STATUS} }}
    withSystem: overallStatus(includeSystem: true) {{
      {STATUS}
      deliveries {{ address state }}
    }}
  }}
}}
"""

TASK_LIST = f"""
query Tasks {{
  tasks {{ edges {{ node {{ id title overallStatus {{ {STATUS} }} }} }} }}
}}
"""

CREATE_SCENARIO = """
mutation CreateScenario($input: CreateScenarioInput!) { createScenario(input: $input) { id } }
"""

UPDATE_PERSON = """
mutation UpdatePerson($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { id }
}
"""

LIVE = f"""
subscription Live {{
  deliveryUpdated {{
    taskId commentId
    delivery {{ id state }}
    status {{ state total }}
    taskStatus {{ {STATUS} }}
    taskStatusWithSystem: taskStatus(includeSystem: true) {{ state total }}
  }}
}}
"""


def counts(status: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """(state, total, queued, sent, failed, read, heldBack) of a status."""
    if status is None:
        return None
    fields = ("state", "total", "queued", "sent", "failed", "read", "heldBack")
    return tuple(status[field] for field in fields)


async def settled_task_deliveries(beacon: Beacon, task_id: str) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]]:
        data = await beacon.client.execute(TASK_DELIVERIES, {"id": task_id})
        deliveries: list[dict[str, Any]] = data["task"]["deliveryStatus"]["deliveries"]
        assert all(d["state"] != "QUEUED" for d in deliveries), deliveries
        return deliveries

    return await eventually(check)


async def suppress(beacon: Beacon, address: str) -> None:
    """What a hard bounce does: the address goes on the account's suppression list (a
    5.1.1 at RCPT TO already put it there; written here too, so as not to depend on it)."""
    db = Database(beacon.server.env["DATABASE_URL"])
    try:
        async with db.write() as conn:
            await db_suppressions.suppress(
                conn,
                account_id=uuid.UUID(beacon.account.account_id),
                channel="EMAIL",
                address=address,
                reason="hard bounce: 550 5.1.1 User unknown",
                now=dt.datetime.now(dt.UTC),
            )
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- item 12


async def test_a_resend_to_a_suppressed_address_is_refused_and_the_delivery_says_since_when_and_why(
    beacon: Beacon,
) -> None:
    # Given a delivery that failed, to an address then put on the suppression list
    rita = await beacon.add_contact("Rita", "reject-rita@example.test")
    task_id = await beacon.create_task("Invoice 42", [rita])
    (failed,) = await settled_task_deliveries(beacon, task_id)
    assert failed["state"] == "FAILED"
    await suppress(beacon, "Reject-Rita@example.test")
    (entry,) = (await beacon.client.execute(SUPPRESSIONS))["suppressions"]

    # Then the delivery carries that entry
    delivery = (await beacon.client.execute(DELIVERY, {"id": failed["id"]}))["delivery"]
    assert delivery["suppression"] == entry
    assert entry["address"] == "reject-rita@example.test"

    # When it is resent
    with pytest.raises(GraphQLError) as raised:
        await beacon.client.execute(RESEND, {"id": failed["id"]})

    # Then the answer says why, with the entry, and nothing was queued
    (error,) = raised.value.errors
    assert error["extensions"] == {
        "code": "ADDRESS_SUPPRESSED",
        "channel": "EMAIL",
        "address": entry["address"],
        "reason": entry["reason"],
        "since": dt.datetime.fromisoformat(entry["createdAt"]).isoformat(),
    }
    assert entry["reason"] in error["message"]
    assert (await beacon.client.execute(DELIVERY, {"id": failed["id"]}))["delivery"] == delivery

    # When the suppression is lifted
    lifted = await beacon.client.execute(LIFT, {"channel": "EMAIL", "address": entry["address"]})
    assert lifted == {"liftSuppression": True}

    # Then the delivery has no suppression, and a resend is queued
    delivery = (await beacon.client.execute(DELIVERY, {"id": failed["id"]}))["delivery"]
    assert delivery["suppression"] is None
    resent = await beacon.client.execute(RESEND, {"id": failed["id"]})
    assert resent["resendDelivery"]["state"] == "QUEUED"


# --------------------------------------------------------------------------- item 14


@pytest.mark.parametrize(
    "server_env", [{"RECIPIENT_RATE_LIMIT": "1", "RECIPIENT_RATE_WINDOW_SECONDS": "600"}]
)
async def test_a_delivery_held_back_by_the_rate_limit_says_until_when_and_its_icon_counts_it(
    beacon: Beacon,
) -> None:
    # Given one email per address per 600 s, and Ann's first email sent
    ann = await beacon.add_contact("Ann", "ann@example.test")
    task_id = await beacon.create_task("Quote", [ann])
    await settled_task_deliveries(beacon, task_id)

    # When a comment writes to her again
    await beacon.add_comment(task_id, "One more thing")

    # Then its delivery stays queued, held back until the first send leaves the window
    async def held() -> dict[str, Any]:
        task: dict[str, Any] = (await beacon.client.execute(COMMENT_STATUS, {"id": task_id}))[
            "task"
        ]
        status = task["comments"]["edges"][0]["node"]["deliveryStatus"]
        # Both read what the worker wrote (the two icons are two reads of one request).
        assert status["heldBack"] == task["overallStatus"]["heldBack"] == 1, task
        return task

    task = await eventually(held)
    status = task["comments"]["edges"][0]["node"]["deliveryStatus"]
    (delivery,) = status["deliveries"]
    (first,) = task["deliveryStatus"]["deliveries"]
    window = dt.timedelta(seconds=600)
    assert delivery["state"] == "QUEUED"
    assert delivery["heldUntil"] is not None
    held_until = dt.datetime.fromisoformat(delivery["heldUntil"])
    assert held_until == dt.datetime.fromisoformat(first["sentAt"]) + window
    # And the icon counts it among the queued, as held back, with the same time
    assert counts(status) == ("QUEUED", 1, 1, 0, 0, 0, 1)
    assert status["heldUntil"] == delivery["heldUntil"]
    # And so does the task's overall icon
    assert counts(task["overallStatus"]) == ("QUEUED", 2, 1, 1, 0, 0, 1)
    assert task["overallStatus"]["heldUntil"] == delivery["heldUntil"]


# --------------------------------------------------------------------------- item 15


async def test_a_tasks_overall_icon_is_the_worst_over_its_own_and_its_comments_notifications(
    beacon: Beacon,
) -> None:
    # Given a task whose own email was sent to Ann
    ann = await beacon.add_contact("Ann", "ann@example.test")
    rita = await beacon.add_contact("Rita", "deny-rita@example.test")
    task_id = await beacon.create_task("Contract", [ann])
    await settled_task_deliveries(beacon, task_id)
    # And a scenario that emails Rita (whose server refuses mail by policy) about invoices
    await beacon.client.execute(
        CREATE_SCENARIO,
        {
            "input": {
                "name": "Tell Rita",
                "trigger": "KEYWORD",
                "keyword": "invoice",
                "action": "EMAIL_PERSON",
                "personId": rita,
                "template": "About {task}",
            }
        },
    )

    # When Ann's address stops working and a comment about the invoice is written
    await beacon.client.execute(
        UPDATE_PERSON, {"id": ann, "input": {"email": "deny-ann@example.test"}}
    )
    await beacon.add_comment(task_id, "The invoice is attached")

    # Then the task's own icon still says sent, but its overall icon says what failed:
    # the comment's email, and (only with system comments) the scenario's
    async def settled() -> dict[str, Any]:
        task: dict[str, Any] = (await beacon.client.execute(OVERALL, {"id": task_id}))["task"]
        assert task["withSystem"]["queued"] == 0, task
        assert task["withSystem"]["total"] == 3, task
        return task

    task = await eventually(settled)
    assert counts(task["deliveryStatus"]) == ("SENT", 1, 0, 1, 0, 0, 0)
    assert counts(task["overallStatus"]) == ("FAILED", 2, 0, 1, 1, 0, 0)
    assert counts(task["withSystem"]) == ("FAILED", 3, 0, 1, 2, 0, 0)
    assert sorted((d["address"], d["state"]) for d in task["withSystem"]["deliveries"]) == [
        ("ann@example.test", "SENT"),
        ("deny-ann@example.test", "FAILED"),
        ("deny-rita@example.test", "FAILED"),
    ]

    # And the task list shows the same overall icon
    (node,) = [
        edge["node"]
        for edge in (await beacon.client.execute(TASK_LIST))["tasks"]["edges"]
        if edge["node"]["id"] == task_id
    ]
    assert node["overallStatus"] == task["overallStatus"]

    # When the comment's email is resent, with a subscription watching
    failed_id = (await beacon.client.execute(COMMENT_STATUS, {"id": task_id}))["task"]["comments"][
        "edges"
    ][0]["node"]["deliveryStatus"]["deliveries"][0]["id"]

    async def resend() -> None:
        # Sent again if the subscription missed it, when it is FAILED again.
        with contextlib.suppress(GraphQLError):
            await beacon.client.execute(RESEND, {"id": failed_id})

    async with beacon.client.subscribe(LIVE) as subscription:
        log = UpdateLog(subscription)
        await log.trigger(resend, lambda u, _: u["delivery"]["id"] == failed_id)

        # Then the updates carry the task's overall icon as it is when each is sent:
        # once the email has failed again, as it was before
        failed = await log.until(
            lambda u: (
                u["delivery"]["id"] == failed_id
                and u["delivery"]["state"] == "FAILED"
                and u["taskStatus"]["state"] == "FAILED"
            )
        )
    assert failed["taskId"] == task_id
    assert counts(failed["taskStatus"]) == counts(task["overallStatus"])
    assert failed["taskStatusWithSystem"] == {"state": "FAILED", "total": 3}
