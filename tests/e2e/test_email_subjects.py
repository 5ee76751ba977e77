"""An email's subject says what happened: a new task, a new comment, or a scenario's
message, each followed by the task's title (the email as a real SMTP server receives it)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from tests.e2e.helpers import Beacon, plain_body

pytestmark = pytest.mark.e2e


def text(message: EmailMessage) -> str:
    """The plain-text part with its line ends as written (CRLF on the wire)."""
    return plain_body(message).replace("\r\n", "\n")


CREATE_SCENARIO = """
mutation($input: CreateScenarioInput!) { createScenario(input: $input) { id } }
"""


async def test_the_subject_tells_a_new_task_from_a_new_comment_and_a_scenario_message(
    beacon: Beacon,
) -> None:
    # Given a contact, and a scenario that writes to the task's contacts on "urgent"
    owner = (await beacon.client.execute("query { viewer { name } }"))["viewer"]["name"]
    ann = await beacon.add_contact("Ann", "ann@example.test")
    await beacon.client.execute(
        CREATE_SCENARIO,
        {
            "input": {
                "name": "Escalate",
                "trigger": "KEYWORD",
                "keyword": "urgent",
                "action": "EMAIL_TASK_CONTACTS",
                "template": "Escalated: {comment}",
            }
        },
    )

    # When a task is created, then commented on, with the keyword
    task_id = await beacon.create_task("Ship v2", [ann])
    new_task = await beacon.sink.wait_for_text("created a new task")
    await beacon.add_comment(task_id, "This is urgent now")
    new_comment = await beacon.sink.wait_for_text("commented on Ship v2")
    message = await beacon.sink.wait_for_text("Escalated: This is urgent now")

    # Then each subject says which it is
    assert new_task.message["Subject"] == "[Beacon] New task: Ship v2"
    assert text(new_task.message) == f"{owner} created a new task: Ship v2\n"
    assert new_comment.message["Subject"] == "[Beacon] New comment on Ship v2"
    assert text(new_comment.message) == (f"{owner} commented on Ship v2:\n\nThis is urgent now\n")
    assert message.message["Subject"] == "[Beacon] Message about Ship v2"
    assert text(message.message) == (
        "A message about the task Ship v2:\n\nEscalated: This is urgent now\n"
    )
