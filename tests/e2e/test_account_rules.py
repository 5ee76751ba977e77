"""The account rules of DESIGN.md section 2, seen from outside: the FREE plan, open
tracking off, one email to all recipients, the account's own SMTP relay, and resend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.engine import Database
from db.tables import deliveries
from tests.e2e.helpers import (
    STATUS_FIELDS,
    Beacon,
    GatedSmtpSink,
    html_body,
    pixel_urls,
)
from tests.support.graphql_client import GraphQLError
from tests.support.reading import READ_AS_PERSON
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

UPDATE_ACCOUNT = """
mutation UpdateAccount($input: UpdateAccountInput!) {
  updateAccount(input: $input) { plan openTracking showAllRecipients smtpRelay }
}
"""

ACCOUNT = "query { account { plan openTracking showAllRecipients smtpRelay } }"

TASK_STATUS = (
    """
query TaskStatus($id: ID!) {
  task(id: $id) {
    deliveryStatus {
      ...StatusFields
      deliveries { id address state acceptedBy readAt events { type detail } }
    }
    comments { edges { node { id deliveryStatus { state } } } }
  }
}
"""
    + STATUS_FIELDS
)

DELIVERY_OF = """
query Delivery($id: ID!) { delivery(id: $id) { id state } }
"""

RESEND = """
mutation Resend($id: ID!) {
  resendDelivery(id: $id) {
    id state attempts failedAt error { code message permanent } events { type detail }
  }
}
"""


async def update_account(beacon: Beacon, **changes: Any) -> dict[str, Any]:
    data = await beacon.client.execute(UPDATE_ACCOUNT, {"input": changes})
    account: dict[str, Any] = data["updateAccount"]
    return account


async def settled_status(beacon: Beacon, task_id: str) -> dict[str, Any]:
    """The task's icon once none of its deliveries is queued any more."""

    async def check() -> dict[str, Any]:
        data = await beacon.client.execute(TASK_STATUS, {"id": task_id})
        status: dict[str, Any] = data["task"]["deliveryStatus"]
        assert status["queued"] == 0, status
        return status

    return await eventually(check)


@pytest.fixture
async def relay() -> AsyncIterator[GatedSmtpSink]:
    """A second SMTP server: the customer's own."""
    async with GatedSmtpSink(hostname="relay.customer.test") as sink:
        yield sink


@pytest.mark.parametrize("plan", ["FREE"])
async def test_given_a_free_account_when_a_task_is_created_then_the_email_goes_out_without_a_pixel_and_tracking_stays_hidden(  # noqa: E501
    beacon: Beacon, db: Database
) -> None:
    # Given a FREE account with a contact
    ann = await beacon.add_contact("Ann", "ann@example.test")

    # When a task is created for the contact, and commented on
    task_id = await beacon.create_task("Ship v2", [ann])
    comment = await beacon.add_comment(task_id, "Any news?")

    # Then both emails are sent, neither with a pixel
    messages = await beacon.sink.wait_for_messages(2)
    for received in messages:
        assert received.rcpt_tos == ("ann@example.test",)
        document = html_body(received.message)
        assert "<img" not in document
        assert "/p/" not in document

    # And the task and the comment have no icon
    data = await beacon.client.execute(TASK_STATUS, {"id": task_id})
    assert data["task"]["deliveryStatus"] is None
    assert data["task"]["comments"]["edges"] == [
        {"node": {"id": comment["id"], "deliveryStatus": None}}
    ]
    assert comment["deliveryStatus"] is None

    # And asking for a delivery by id says that the plan lacks tracking
    async with db.read() as conn:
        delivery_ids = (await conn.execute(sa.select(deliveries.c.id))).scalars().all()
    assert len(delivery_ids) == 2
    with pytest.raises(GraphQLError) as raised:
        await beacon.client.execute(DELIVERY_OF, {"id": str(delivery_ids[0])})
    assert raised.value.codes == ["PLAN_REQUIRED"]


async def test_given_open_tracking_turned_off_when_a_task_is_created_then_its_email_has_no_pixel_and_stays_sent(  # noqa: E501
    beacon: Beacon,
) -> None:
    ann = await beacon.add_contact("Ann", "ann@example.test")

    # Given open tracking is turned off
    account = await update_account(beacon, openTracking=False)
    assert account["openTracking"] is False
    assert (await beacon.client.execute(ACCOUNT))["account"]["openTracking"] is False

    # When a task is created
    task_id = await beacon.create_task("Ship v2", [ann])

    # Then the email arrives without a pixel, and the delivery is SENT (and stays so)
    (received,) = await beacon.sink.wait_for_messages(1)
    assert pixel_urls(html_body(received.message)) == []
    status = await settled_status(beacon, task_id)
    assert status["state"] == "SENT"
    assert [d["state"] for d in status["deliveries"]] == ["SENT"]

    # And turning it back on gives the next email its pixel again
    await update_account(beacon, openTracking=True)
    await beacon.add_comment(task_id, "Tracking is back")
    received = await beacon.sink.wait_for_text("Tracking is back")
    assert len(pixel_urls(html_body(received.message))) == 1


async def test_given_show_all_recipients_when_a_task_is_created_then_one_email_goes_to_everyone_and_one_open_reads_them_all(  # noqa: E501
    beacon: Beacon,
) -> None:
    addresses = ["ann@example.test", "bob@example.test", "cy@example.test"]
    people = [await beacon.add_contact(a.split("@")[0], a) for a in addresses]

    # Given the account shows all recipients
    account = await update_account(beacon, showAllRecipients=True)
    assert account["showAllRecipients"] is True

    # When a task is created for three contacts
    task_id = await beacon.create_task("Ship v2", people)

    # Then one email goes out, with everyone in To: and one pixel
    status = await settled_status(beacon, task_id)
    assert status["sent"] == 3
    assert len(beacon.sink.messages) == 1
    (received,) = beacon.sink.messages
    assert sorted(received.rcpt_tos) == addresses
    to = str(received.message["To"])
    assert all(address in to for address in addresses), to
    (pixel_url,) = pixel_urls(html_body(received.message))

    # When one of them opens it
    async with httpx.AsyncClient(timeout=10, headers=READ_AS_PERSON) as http:
        response = await http.get(pixel_url)
    assert response.status_code == 200

    # Then every delivery of that email becomes READ, each saying it was opened by one
    # of three
    async def read_by_all() -> dict[str, Any]:
        status = await settled_status(beacon, task_id)
        assert status["read"] == 3, status
        return status

    status = await eventually(read_by_all)
    assert status["state"] == "READ"
    assert [d["state"] for d in status["deliveries"]] == ["READ"] * 3
    assert len({d["readAt"] for d in status["deliveries"]}) == 1
    for delivery in status["deliveries"]:
        opened = [e for e in delivery["events"] if e["type"] == "opened"]
        assert opened[0]["detail"].endswith("; opened by one of 3 recipients")


# The relay runs on this machine: the operator allows private networks (by default a
# tenant's relay must be public: tests/e2e/test_smtp_relay_guard.py).
@pytest.mark.parametrize("server_env", [{"ALLOW_PRIVATE_NETWORKS": "1"}])
async def test_given_the_accounts_own_smtp_relay_when_a_task_is_created_then_the_mail_goes_there_and_names_it(  # noqa: E501
    beacon: Beacon, relay: GatedSmtpSink
) -> None:
    ann = await beacon.add_contact("Ann", "ann@example.test")

    # Given an invalid relay is refused, and changes nothing
    with pytest.raises(GraphQLError) as raised:
        await update_account(beacon, smtpRelay="ftp://x")
    assert raised.value.codes == ["BAD_USER_INPUT"]
    assert (await beacon.client.execute(ACCOUNT))["account"]["smtpRelay"] is None

    # And the account's own relay is set
    account = await update_account(beacon, smtpRelay=relay.url)
    assert account["smtpRelay"] == relay.url

    # When a task is created
    task_id = await beacon.create_task("Ship v2", [ann])

    # Then the mail goes to the relay, not the system's server
    (received,) = await relay.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)
    status = await settled_status(beacon, task_id)
    assert beacon.sink.messages == []

    # And the delivery names the relay as the server that accepted it
    (delivery,) = status["deliveries"]
    assert delivery["state"] == "SENT"
    assert delivery["acceptedBy"] == "relay.customer.test"

    # When the relay is cleared, mail goes through the system's server again
    account = await update_account(beacon, smtpRelay=None)
    assert account["smtpRelay"] is None
    await beacon.add_comment(task_id, "Back to the system relay")
    await beacon.sink.wait_for_text("Back to the system relay")
    assert len(relay.messages) == 1


async def test_given_a_failed_delivery_when_it_is_resent_then_it_is_queued_afresh_keeping_its_history_and_fails_again(  # noqa: E501
    beacon: Beacon,
) -> None:
    # Given a delivery the mail server refused for good (by policy: a "no such user"
    # would also suppress the address, and the resend would then fail at once)
    rejected_address = "deny-bob@example.test"
    bob = await beacon.add_contact("Bob", rejected_address)
    task_id = await beacon.create_task("Ship v2", [bob])
    (failed,) = (await settled_status(beacon, task_id))["deliveries"]
    assert failed["state"] == "FAILED"

    # When it is resent (while the mail server is slow to answer)
    async with beacon.sink.holding():
        data = await beacon.client.execute(RESEND, {"id": failed["id"]})

    # Then it is QUEUED again, with its attempts and error reset
    delivery = data["resendDelivery"]
    assert delivery["id"] == failed["id"]
    assert delivery["state"] == "QUEUED"
    assert delivery["attempts"] == 0
    assert delivery["error"] is None
    assert delivery["failedAt"] is None

    # And its history keeps the first failure and records the resend
    assert [e["type"] for e in delivery["events"]] == ["queued", "failed", "resend_requested"]

    # And the mail server rejects it again: FAILED, permanent, after one new attempt
    (again,) = (await settled_status(beacon, task_id))["deliveries"]
    assert again["state"] == "FAILED"
    after = await beacon.delivery(failed["id"])
    assert after["attempts"] == 1
    assert after["error"] == {
        "code": "550",
        "message": f"550 5.7.1 <{rejected_address}>: Recipient address rejected: Access denied",
        "permanent": True,
    }
    assert [e["type"] for e in after["events"]] == [
        "queued",
        "failed",
        "resend_requested",
        "failed",
    ]
    assert beacon.sink.rcpt_attempts.count(rejected_address) == 2
