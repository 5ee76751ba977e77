"""Who wrote it (issue 14, point 4): tasks and comments are by the signed-in person,
who is never notified of their own writing, on any channel."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Beacon
from tests.e2e.team_support import add_teammate
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TASK = """
query Task($id: ID!) {
  task(id: $id) {
    createdBy { id name }
    deliveryStatus { queued deliveries { recipient { id } channel } }
    comments {
      edges { node { id author { id name }
        deliveryStatus { queued deliveries { recipient { id } channel address } } } }
    }
  }
}
"""

SCENARIO = """
mutation S($personId: ID!) {
  createScenario(input: {name: "Ping Mia", trigger: KEYWORD, keyword: "urgent",
    action: EMAIL_PERSON, personId: $personId, template: "Urgent: {comment}"}) { id }
}
"""


async def settled_task(beacon: Beacon, task_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        task: dict[str, Any] = (await beacon.client.execute(TASK, {"id": task_id}))["task"]
        statuses = [task["deliveryStatus"]] + [
            edge["node"]["deliveryStatus"] for edge in task["comments"]["edges"]
        ]
        assert all(status is None or status["queued"] == 0 for status in statuses)
        return task

    return await eventually(check)


async def test_the_author_gets_no_email_for_their_own_comment(beacon: Beacon) -> None:
    # given a teammate with an email, the owner and a contact on a task, and a scenario
    # that emails the teammate whenever a comment says "urgent"
    mia = await add_teammate(beacon, "Mia", "mia@acme.test")
    carl = await beacon.add_contact("Carl", "carl@client.test")
    task_id = await beacon.create_task(
        "Launch", [beacon.account.person_id, mia.person_id, carl], client=mia.client
    )
    await beacon.client.execute(SCENARIO, {"personId": mia.person_id})

    # when the teammate comments, signed in with their own token
    comment = await beacon.add_comment(task_id, "urgent: shipped", client=mia.client)

    # then the task and the comment are theirs
    task = await settled_task(beacon, task_id)
    assert task["createdBy"] == {"id": mia.person_id, "name": "Mia"}
    node = next(e["node"] for e in task["comments"]["edges"] if e["node"]["id"] == comment["id"])
    assert node["author"] == {"id": mia.person_id, "name": "Mia"}
    # and everyone else was notified, the author on no channel at all
    recipients = {d["recipient"]["id"] for d in node["deliveryStatus"]["deliveries"]}
    assert recipients == {beacon.account.person_id, carl}
    task_recipients = {d["recipient"]["id"] for d in task["deliveryStatus"]["deliveries"]}
    assert mia.person_id not in task_recipients
    # and no system comment was written for a scenario that had only the author to email
    assert len(task["comments"]["edges"]) == 1
    # and the mail server saw the comment go to the others, never to Mia
    await beacon.sink.wait_for_text("urgent: shipped")
    addressed = {rcpt for message in beacon.sink.messages for rcpt in message.rcpt_tos}
    assert "carl@client.test" in addressed
    assert "mia@acme.test" not in addressed

    # when the owner writes "urgent" next
    await beacon.add_comment(task_id, "urgent too")

    # then the scenario emails Mia, who did not write it
    received = await beacon.sink.wait_for_text("Urgent: urgent too")
    assert received.rcpt_tos == ("mia@acme.test",)
