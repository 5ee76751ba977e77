"""The email path end to end: a comment is queued, sent to a real SMTP server (accepted,
rejected or deferred), and read through the pixel in the email that arrived; the
websocket subscription shows every step as it happens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    STATUS_FIELDS,
    Beacon,
    caused_by_comment,
    html_body,
    pixel_urls,
)
from tests.support.reading import READ_AS_PERSON
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TASK_STATUS = (
    """
query TaskStatus($id: ID!) {
  task(id: $id) { deliveryStatus { ...StatusFields } }
}
"""
    + STATUS_FIELDS
)

COMMENT_STATUS = (
    """
query CommentStatus($id: ID!) {
  task(id: $id) {
    comments {
      edges { node { id deliveryStatus { ...StatusFields deliveries { id address state } } } }
    }
  }
}
"""
    + STATUS_FIELDS
)

GIF_BYTES = 43


async def task_settled(beacon: Beacon, task_id: str) -> None:
    """Wait until nothing of the task's own notification is still queued."""

    async def check() -> None:
        data = await beacon.client.execute(TASK_STATUS, {"id": task_id})
        assert data["task"]["deliveryStatus"]["queued"] == 0

    await eventually(check)


def opened_events(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in delivery["events"] if event["type"] == "opened"]


async def test_given_an_accepted_and_a_rejected_address_when_a_comment_is_added_then_the_subscription_shows_queued_sent_failed_and_read(  # noqa: E501
    beacon: Beacon,
) -> None:
    # Given two contacts, one the mail server accepts and one it rejects, on a task
    ann = await beacon.add_contact("Ann", "ann@example.test")
    # (refused by policy: a "no such user" would suppress the address when the task's
    # own email fails, and the comment's would then fail at once, unsent)
    rejected_address = "deny-bob@example.test"
    bob = await beacon.add_contact("Bob", rejected_address)
    task_id = await beacon.create_task("Ship v2", [ann, bob])
    await task_settled(beacon, task_id)

    async with beacon.subscribe(task_id) as log:
        # When a comment is added while the mail server is slow to answer
        async with beacon.sink.holding():
            comment, _ = await log.trigger(
                lambda: beacon.add_comment(task_id, "Release notes are ready"), caused_by_comment
            )
            comment_id = comment["id"]
            assert comment["deliveryStatus"]["total"] == 2
            # Then the subscription shows both deliveries QUEUED first
            await log.until(
                lambda _: (
                    {
                        u["delivery"]["address"]
                        for u in log.updates
                        if u["commentId"] == comment_id and u["delivery"]["state"] == "QUEUED"
                    }
                    == {"ann@example.test", rejected_address}
                )
            )

        # And, once the server answers, SENT for the accepted one and FAILED for the other
        by_address = {
            u["delivery"]["address"]: u["delivery"]["id"]
            for u in log.updates
            if u["commentId"] == comment_id
        }
        accepted_id, rejected_id = by_address["ann@example.test"], by_address[rejected_address]
        sent = await log.until_state(accepted_id, "SENT")
        failed = await log.until_state(rejected_id, "FAILED")

        assert log.states(accepted_id)[0] == "QUEUED"
        assert log.states(rejected_id)[0] == "QUEUED"
        assert sent["taskId"] == task_id
        assert sent["delivery"]["acceptedBy"] == beacon.sink.hostname
        assert sent["delivery"]["sentAt"] is not None
        assert sent["delivery"]["attempts"] == 1
        assert sent["delivery"]["error"] is None
        assert failed["delivery"]["error"] == {
            "code": "550",
            "message": f"550 5.7.1 <{rejected_address}>: Recipient address rejected: Access denied",
            "permanent": True,
        }
        assert failed["delivery"]["failedAt"] is not None
        assert failed["delivery"]["sentAt"] is None
        last = log.updates[-1]
        assert last["status"] == {
            "state": "FAILED",
            "total": 2,
            "queued": 0,
            "sent": 1,
            "failed": 1,
            "read": 0,
        }

        # And the comment's icon is FAILED, with the counts
        data = await beacon.client.execute(COMMENT_STATUS, {"id": task_id})
        (edge,) = data["task"]["comments"]["edges"]
        assert edge["node"]["id"] == comment_id
        status = edge["node"]["deliveryStatus"]
        assert {key: status[key] for key in ("state", "total", "queued", "sent", "failed")} == {
            "state": "FAILED",
            "total": 2,
            "queued": 0,
            "sent": 1,
            "failed": 1,
        }
        assert {d["id"]: d["state"] for d in status["deliveries"]} == {
            accepted_id: "SENT",
            rejected_id: "FAILED",
        }

        # When the recipient opens the email that arrived, which carries one pixel
        received = await beacon.sink.wait_for_text("Release notes are ready")
        assert received.rcpt_tos == ("ann@example.test",)
        (pixel_url,) = pixel_urls(html_body(received.message))
        assert pixel_url.startswith(f"{beacon.base_url}/p/")
        async with httpx.AsyncClient(timeout=10, headers=READ_AS_PERSON) as http:
            response = await http.get(pixel_url)

            # Then the pixel is a GIF nobody may cache
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/gif"
            assert len(response.content) == GIF_BYTES
            assert "no-store" in response.headers["cache-control"]

            # And the subscription pushes READ, with readAt and the icon's new counts
            read = await log.until_state(accepted_id, "READ")
            assert read["delivery"]["readAt"] is not None
            assert read["delivery"]["openCount"] == 1
            assert read["status"]["state"] == "FAILED"  # a failure still outranks a read
            assert read["status"]["read"] == 1
            assert read["status"]["sent"] == 0
            first_read_at = read["delivery"]["readAt"]

            # When it is opened a second time
            again = await http.get(pixel_url)
            assert again.status_code == 200

            # Then the state and readAt stay; the open is counted and kept in the history
            async def opened_twice() -> dict[str, Any]:
                delivery: dict[str, Any] = await beacon.delivery(accepted_id)
                assert delivery["openCount"] == 2, delivery
                return delivery

            delivery = await eventually(opened_twice)
            assert delivery["state"] == "READ"
            assert delivery["readAt"] == first_read_at
            assert delivery["openCount"] == 2
            assert len(opened_events(delivery)) == 2

            # When a bad or forged token is loaded
            token = pixel_url.removeprefix(f"{beacon.base_url}/p/").removesuffix(".gif")
            forged = ("B" if token[0] == "A" else "A") + token[1:]
            for bad in ("not-a-token", forged, token[:-2]):
                response = await http.get(f"{beacon.base_url}/p/{bad}.gif")

                # Then it still gets the GIF, and nothing is recorded
                assert response.status_code == 200
                assert response.headers["content-type"] == "image/gif"
                assert len(response.content) == GIF_BYTES
            assert await beacon.delivery(accepted_id) == delivery

        # And the rejected delivery was never opened
        rejected = await beacon.delivery(rejected_id)
        assert rejected["state"] == "FAILED"
        assert rejected["readAt"] is None
        assert [event["type"] for event in rejected["events"]] == ["queued", "failed"]


@pytest.mark.parametrize(
    "server_env",
    [{"SEND_MAX_ATTEMPTS": "2", "RETRY_BASE_SECONDS": "1"}],
    ids=["max-attempts-2"],
)
async def test_given_an_address_the_server_defers_when_a_comment_is_sent_then_it_stays_queued_retrying_and_gives_up_after_the_last_attempt(  # noqa: E501
    beacon: Beacon,
) -> None:
    # Given a contact whose mail server keeps answering 451, on a task
    deferred_address = "defer-carl@example.test"
    carl = await beacon.add_contact("Carl", deferred_address)
    task_id = await beacon.create_task("Quarterly report", [carl])

    async with beacon.subscribe(task_id) as log:
        # When a comment is added
        comment, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "Numbers attached"), caused_by_comment
        )
        delivery_id = update["delivery"]["id"]

        # Then it stays QUEUED while the attempts climb, and then fails for good
        failed = await log.until_state(delivery_id, "FAILED")
        seen = [
            (u["delivery"]["state"], u["delivery"]["attempts"])
            for u in log.updates
            if u["delivery"]["id"] == delivery_id
        ]
        assert ("QUEUED", 1) in seen, seen
        assert seen.index(("QUEUED", 1)) < seen.index(("FAILED", 2)), seen
        assert failed["commentId"] == comment["id"]
        assert failed["delivery"]["attempts"] == 2
        error = failed["delivery"]["error"]
        assert error["code"] == "451"
        assert error["permanent"] is False
        assert error["message"].startswith("gave up after 2 attempts"), error
        assert f"451 4.7.1 <{deferred_address}>: Try again later" in error["message"]
        assert [event["type"] for event in failed["delivery"]["events"]] == [
            "queued",
            "retry_scheduled",
            "failed",
        ]
        assert failed["status"]["state"] == "FAILED"
        assert beacon.sink.rcpt_attempts.count(deferred_address) >= 2
