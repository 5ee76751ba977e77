"""Tasks and people change (issue 14, point 6): updateTask, addSubscribers,
removeSubscribers, and deletePerson, which erases a person from every table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.engine import Database
from db.tables import metadata
from tests.e2e.helpers import Beacon
from tests.e2e.team_support import add_teammate
from tests.e2e.test_bounces_live import bounce_for, sent_to_bob
from tests.support.graphql_client import GraphQLError
from tests.support.server import BOUNCE_AUTH

pytestmark = pytest.mark.e2e

UPDATE_TASK = """
mutation U($id: ID!, $input: UpdateTaskInput!) {
  updateTask(id: $id, input: $input) { id title closedAt subscribers { id } }
}
"""

ADD_SUBSCRIBERS = """
mutation A($taskId: ID!, $personIds: [ID!]!) {
  addSubscribers(taskId: $taskId, personIds: $personIds) { subscribers { id } }
}
"""

REMOVE_SUBSCRIBERS = """
mutation R($taskId: ID!, $personIds: [ID!]!) {
  removeSubscribers(taskId: $taskId, personIds: $personIds) { subscribers { id } }
}
"""

DELETE_PERSON = "mutation D($id: ID!) { deletePerson(id: $id) }"

NAME_BOB = """
mutation N($id: ID!) {
  updatePerson(id: $id, input: {name: "Bob Builder", phone: "+15557654321"}) { id }
}
"""

SCENARIO = """
mutation S($personId: ID!) {
  createScenario(input: {name: "Escalate", trigger: KEYWORD, keyword: "escalate",
    action: EMAIL_PERSON, personId: $personId, template: "See {task}"}) { id }
}
"""

DELIVERY = """
query D($id: ID!) {
  delivery(id: $id) { id address state recipient { id name email } events { type at } }
}
"""


async def test_a_task_is_renamed_closed_reopened_and_its_subscribers_change(
    beacon: Beacon,
) -> None:
    # given a task with one contact
    ann = await beacon.add_contact("Ann", "ann@client.test")
    ben = await beacon.add_contact("Ben", "ben@client.test")
    task_id = await beacon.create_task("Draft", [ann])

    # when it is renamed and closed, by a MEMBER
    mia = await add_teammate(beacon, "Mia")
    closed = await mia.client.execute(
        UPDATE_TASK, {"id": task_id, "input": {"title": "Final", "closed": True}}
    )
    again = await beacon.client.execute(UPDATE_TASK, {"id": task_id, "input": {"closed": True}})
    reopened = await beacon.client.execute(UPDATE_TASK, {"id": task_id, "input": {"closed": False}})

    # then the title changed, closing twice kept the first time, and reopening cleared it
    assert closed["updateTask"]["title"] == "Final"
    assert closed["updateTask"]["closedAt"] is not None
    assert again["updateTask"]["closedAt"] == closed["updateTask"]["closedAt"]
    assert reopened["updateTask"]["closedAt"] is None
    assert reopened["updateTask"]["title"] == "Final"

    # when Ben is added (twice: once counts) and Ann removed
    added = await beacon.client.execute(
        ADD_SUBSCRIBERS, {"taskId": task_id, "personIds": [ben, ben, ann]}
    )
    removed = await beacon.client.execute(
        REMOVE_SUBSCRIBERS, {"taskId": task_id, "personIds": [ann]}
    )

    # then the list follows, and the next comment reaches Ben only
    assert [p["id"] for p in added["addSubscribers"]["subscribers"]] == [ann, ben]
    assert [p["id"] for p in removed["removeSubscribers"]["subscribers"]] == [ben]
    await beacon.add_comment(task_id, "Ben only")
    received = await beacon.sink.wait_for_text("Ben only")
    assert received.rcpt_tos == ("ben@client.test",)

    # and bad input is refused without a change
    for variables in (
        {"id": task_id, "input": {"title": "  "}},
        {"id": task_id, "input": {"title": None}},
    ):
        with pytest.raises(GraphQLError) as refused:
            await beacon.client.execute(UPDATE_TASK, variables)
        assert refused.value.codes == ["BAD_USER_INPUT"]
    with pytest.raises(GraphQLError) as unknown:
        await beacon.client.execute(
            ADD_SUBSCRIBERS, {"taskId": task_id, "personIds": [beacon.account.account_id]}
        )
    assert unknown.value.codes == ["BAD_USER_INPUT"]


async def every_row(database_url: str) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null value in the database."""
    database = Database(database_url)
    found: list[tuple[str, str, str]] = []
    try:
        async with database.read() as conn:
            for table in metadata.sorted_tables:
                for row in (await conn.execute(sa.select(table))).mappings():
                    for column, value in row.items():
                        if value is None:
                            continue
                        text = (
                            bytes(value).decode("latin-1")
                            if isinstance(value, bytes | memoryview)
                            else str(value)
                        )
                        found.append((table.name, column, text))
    finally:
        await database.dispose()
    return found


async def test_deleting_a_person_leaves_no_address_of_theirs_in_any_table(
    beacon: Beacon, database_url: str
) -> None:
    # given a contact who was emailed, bounced (so is suppressed), named by a scenario's
    # system comment, and subscribed to a task
    delivery_id, received = await sent_to_bob(beacon)
    data = await beacon.client.execute(
        "query { people { id name } tasks { edges { node { id } } } }"
    )
    bob = next(person["id"] for person in data["people"] if person["name"] == "Bob")
    (task,) = data["tasks"]["edges"]
    task_id = task["node"]["id"]
    await beacon.client.execute(NAME_BOB, {"id": bob})
    await beacon.client.execute(SCENARIO, {"personId": bob})
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        hard = await http.post(
            "/callbacks/email-bounce",
            content=bounce_for("postfix_hard_5.1.1.eml", received.envelope_from),
            headers=BOUNCE_AUTH,
        )
    assert hard.json()["deliveries"] == [delivery_id]
    # and, now suppressed, is named by a scenario's system comment
    await beacon.add_comment(task_id, "please escalate")
    before = (await beacon.client.execute(DELIVERY, {"id": delivery_id}))["delivery"]
    holding = {
        table
        for table, _, value in await every_row(database_url)
        if "bob@example.test" in value.lower()
    }
    assert {"people", "deliveries", "bounces", "suppressions", "comments"} <= holding

    # when a MEMBER tries to delete him, and then the owner does
    mia = await add_teammate(beacon, "Mia")
    with pytest.raises(GraphQLError) as refused:
        await mia.client.execute(DELETE_PERSON, {"id": bob})
    assert refused.value.codes == ["FORBIDDEN"]
    deleted = await beacon.client.execute(DELETE_PERSON, {"id": bob})

    # then no table holds his addresses or his name any more
    assert deleted["deletePerson"] is True
    leftovers: list[Any] = [
        (table, column, value)
        for table, column, value in await every_row(database_url)
        if any(
            secret in value.lower() for secret in ("bob@example.test", "5557654321", "bob builder")
        )
    ]
    assert leftovers == []
    # and his deliveries stay, for a stable placeholder, with their events' times
    after = (await beacon.client.execute(DELIVERY, {"id": delivery_id}))["delivery"]
    assert after["address"] == f"erased-{bob.replace('-', '')}"
    assert after["recipient"] == {"id": bob, "name": "Erased person", "email": None}
    assert after["state"] == "FAILED"
    assert [(e["type"], e["at"]) for e in after["events"]] == [
        (e["type"], e["at"]) for e in before["events"]
    ]
    # and he is nobody's subscriber, in no list, and cannot be deleted twice
    people = (await beacon.client.execute("query { people { id } }"))["people"]
    assert bob not in [p["id"] for p in people]
    task = await beacon.client.execute(
        "query T($id: ID!) { task(id: $id) { subscribers { id } } }", {"id": task_id}
    )
    assert task["task"]["subscribers"] == []
    with pytest.raises(GraphQLError) as again:
        await beacon.client.execute(DELETE_PERSON, {"id": bob})
    assert again.value.codes == ["NOT_FOUND"]


async def test_deleting_an_employee_ends_their_sign_in_but_never_the_last_owner(
    beacon: Beacon,
) -> None:
    # given a teammate who is signed in
    mia = await add_teammate(beacon, "Mia", "mia@acme.test")

    # when the owner deletes them
    await beacon.client.execute(DELETE_PERSON, {"id": mia.person_id})

    # then their token no longer signs anyone in
    with pytest.raises(GraphQLError) as refused:
        await mia.client.execute("query { viewer { id } }")
    assert refused.value.codes == ["UNAUTHENTICATED"]
    # and the only OWNER cannot be deleted
    with pytest.raises(GraphQLError) as last:
        await beacon.client.execute(DELETE_PERSON, {"id": beacon.account.person_id})
    assert last.value.codes == ["FORBIDDEN"]
