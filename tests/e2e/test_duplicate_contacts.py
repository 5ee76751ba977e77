"""One address per channel in an account (issue 13, item 13): adding or giving someone an
address another person has is DUPLICATE_ADDRESS, naming that person (ADR 0017)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Beacon
from tests.support.graphql_client import GraphQLError

pytestmark = pytest.mark.e2e

ADD_PERSON = """
mutation AddPerson($input: AddPersonInput!) {
  addPerson(input: $input) { id }
}
"""

UPDATE_PERSON = """
mutation UpdatePerson($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { id }
}
"""

PEOPLE = "query { people { id name email phone telegramChatId webhookUrl } }"


async def test_an_address_another_person_has_is_a_duplicate_address_naming_that_person(
    beacon: Beacon,
) -> None:
    # Given Ann, with an email and a phone, and Bob
    ann = (
        await beacon.client.execute(
            ADD_PERSON,
            {"input": {"name": "Ann", "email": "ann@example.test", "phone": "+15550001"}},
        )
    )["addPerson"]["id"]
    bob = (
        await beacon.client.execute(
            ADD_PERSON, {"input": {"name": "Bob", "email": "b@example.test"}}
        )
    )["addPerson"]["id"]
    before = await beacon.client.execute(PEOPLE)

    cases: list[tuple[str, dict[str, Any], str]] = [
        (ADD_PERSON, {"input": {"name": "Ann again", "email": "ann@example.test"}}, "email"),
        (ADD_PERSON, {"input": {"name": "Ann", "email": "  ANN@example.TEST "}}, "email"),
        (ADD_PERSON, {"input": {"name": "Ann's phone", "phone": "+1 (555) 0001"}}, "phone"),
        (UPDATE_PERSON, {"id": bob, "input": {"email": "Ann@Example.test"}}, "email"),
    ]
    for query, variables, field in cases:
        # When it is sent
        with pytest.raises(GraphQLError) as raised:
            await beacon.client.execute(query, variables)

        # Then the answer names the field and the person who has the address
        (error,) = raised.value.errors
        assert error["extensions"] == {
            "code": "DUPLICATE_ADDRESS",
            "field": field,
            "personId": ann,
        }, variables
        assert "Ann" in error["message"]

    # And nobody was added or changed
    assert await beacon.client.execute(PEOPLE) == before

    # And a person may give their own address another case
    await beacon.client.execute(UPDATE_PERSON, {"id": ann, "input": {"email": "Ann@example.test"}})
