"""Roles (issue 14, point 2): OWNER and ADMIN manage the account, a MEMBER reads it and
writes tasks and comments; a refusal is FORBIDDEN naming the role it needs; an account
always keeps an OWNER."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Beacon
from tests.e2e.team_support import SET_ROLE, WHO_AM_I, add_teammate
from tests.support.graphql_client import GraphQLClient, GraphQLError

pytestmark = pytest.mark.e2e

ACCOUNT = "query { account { openTracking showAllRecipients } }"

MANAGER_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("mutation { updateAccount(input: {openTracking: false}) { openTracking } }", {}),
    (
        'mutation { setChannelCredentials(input: {telegramBotToken: "1:x"}) { id } }',
        {},
    ),
    (
        """mutation { createScenario(input: {name: "n", trigger: TASK_CREATED,
            action: EMAIL_TASK_CONTACTS, template: "t"}) { id } }""",
        {},
    ),
    (
        "mutation D($id: ID!) { deleteScenario(id: $id) }",
        {"id": "00000000-0000-0000-0000-000000000000"},
    ),
    ('mutation { liftSuppression(channel: EMAIL, address: "a@b.test") }', {}),
    ('mutation { addPerson(input: {name: "Eve", kind: EMPLOYEE}) { id } }', {}),
]

READS = """
query {
  account { id plan }
  people { id role }
  tasks { edges { node { id title } } }
  scenarios { id }
  suppressions { address }
  bounces { id }
}
"""


async def forbidden(client: GraphQLClient, query: str, variables: dict[str, Any]) -> str:
    with pytest.raises(GraphQLError) as refused:
        await client.execute(query, variables)
    assert refused.value.codes == ["FORBIDDEN"], refused.value.errors
    return str(refused.value.errors[0]["message"])


async def test_a_member_cannot_change_settings_but_reads_and_writes_tasks(beacon: Beacon) -> None:
    # given a MEMBER
    mia = await add_teammate(beacon, "Mia", "mia@acme.test")

    # when they try what only an OWNER or ADMIN may do
    messages = [await forbidden(mia.client, query, vars) for query, vars in MANAGER_ONLY]

    # then each is refused, naming the role it needs and theirs
    for message in messages:
        assert "needs the OWNER or ADMIN role" in message
        assert "You are MEMBER" in message
    # and nothing changed
    assert (await beacon.client.execute(ACCOUNT))["account"]["openTracking"] is True
    people = (await beacon.client.execute("query { people { name } }"))["people"]
    assert [p["name"] for p in people] == ["owner", "Mia"]

    # while they read everything in the account and write tasks, comments and contacts
    assert (await mia.client.execute(READS))["account"]["plan"] == "PREMIUM"
    contact = await beacon.add_contact("Carl", "carl@client.test", client=mia.client)
    task_id = await beacon.create_task("Mia's task", [contact], client=mia.client)
    await beacon.add_comment(task_id, "on it", client=mia.client)
    # and edit their own person, but not another employee
    await mia.client.execute(
        'mutation U($id: ID!) { updatePerson(id: $id, input: {name: "Mia K"}) { id } }',
        {"id": mia.person_id},
    )
    message = await forbidden(
        mia.client,
        'mutation U($id: ID!) { updatePerson(id: $id, input: {name: "Boss"}) { id } }',
        {"id": beacon.account.person_id},
    )
    assert "Changing another employee needs the OWNER or ADMIN role" in message


async def test_an_admin_manages_the_account_but_not_its_owners(beacon: Beacon) -> None:
    # given an ADMIN and a MEMBER
    ada = await add_teammate(beacon, "Ada", role="ADMIN")
    mia = await add_teammate(beacon, "Mia")

    # when the ADMIN changes settings and promotes the MEMBER to ADMIN
    await ada.client.execute("mutation { updateAccount(input: {openTracking: false}) { id } }")
    promoted = await ada.client.execute(SET_ROLE, {"personId": mia.person_id, "role": "ADMIN"})

    # then both worked
    assert (await beacon.client.execute(ACCOUNT))["account"]["openTracking"] is False
    assert promoted["setRole"]["role"] == "ADMIN"
    # but giving or taking OWNER is the OWNER's alone
    for person_id, role in ((mia.person_id, "OWNER"), (beacon.account.person_id, "MEMBER")):
        message = await forbidden(ada.client, SET_ROLE, {"personId": person_id, "role": role})
        assert "needs the OWNER role" in message
    assert (await beacon.client.execute(WHO_AM_I))["viewer"]["role"] == "OWNER"


async def test_an_account_always_keeps_an_owner(beacon: Beacon) -> None:
    # given the only OWNER
    owner = beacon.account.person_id

    # when they step down
    message = await forbidden(beacon.client, SET_ROLE, {"personId": owner, "role": "ADMIN"})

    # then it is refused
    assert "at least one OWNER" in message
    # and once someone else is OWNER, they may
    ada = await add_teammate(beacon, "Ada")
    await beacon.client.execute(SET_ROLE, {"personId": ada.person_id, "role": "OWNER"})
    stepped = await beacon.client.execute(SET_ROLE, {"personId": owner, "role": "ADMIN"})
    assert stepped["setRole"]["role"] == "ADMIN"
    # and the new OWNER is now the last one
    message = await forbidden(ada.client, SET_ROLE, {"personId": ada.person_id, "role": "MEMBER"})
    assert "at least one OWNER" in message
