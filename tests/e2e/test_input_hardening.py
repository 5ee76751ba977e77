"""Input the API refuses with a clear BAD_USER_INPUT naming the field (issue 13, items 7
and 8): control characters in addresses, names and titles, and an explicit null where
null means nothing; error messages repeat at most about 200 characters of the input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.helpers import Beacon, run_cli
from tests.support.graphql_client import GraphQLClient, GraphQLError

pytestmark = pytest.mark.e2e

ADD_PERSON = """
mutation AddPerson($input: AddPersonInput!) {
  addPerson(input: $input) { id name email telegramChatId phone webhookUrl }
}
"""

UPDATE_PERSON = """
mutation UpdatePerson($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { id name email trackingConsent }
}
"""

CREATE_TASK = """
mutation CreateTask($title: String!) {
  createTask(input: {title: $title, subscriberIds: []}) { id title }
}
"""

ADD_COMMENT = """
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) { id body }
}
"""

CREATE_SCENARIO = """
mutation CreateScenario($input: CreateScenarioInput!) {
  createScenario(input: $input) { id name template }
}
"""

UPDATE_ACCOUNT = """
mutation UpdateAccount($input: UpdateAccountInput!) {
  updateAccount(input: $input) { openTracking showAllRecipients }
}
"""

EVERYTHING = """
query Everything {
  people { id name email telegramChatId phone webhookUrl trackingConsent }
  tasks { edges { node { id title comments { edges { node { id body } } } } } }
  scenarios { id }
  account { name openTracking showAllRecipients requireTrackingConsent countMachineOpens }
}
"""


async def refused(client: GraphQLClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The one error a request is answered with."""
    with pytest.raises(GraphQLError) as raised:
        await client.execute(query, variables)
    (error,) = raised.value.errors
    return error


def person(**fields: Any) -> dict[str, Any]:
    return {"input": {"name": "Zed", **fields}}


async def test_control_characters_in_addresses_names_and_titles_are_refused_naming_the_field(
    beacon: Beacon,
) -> None:
    # Given a person and a task to update and comment on
    zed = (await beacon.client.execute(ADD_PERSON, person(email="zed@example.test")))["addPerson"]
    task = (await beacon.client.execute(CREATE_TASK, {"title": "Plain title"}))["createTask"]
    before = await beacon.client.execute(EVERYTHING)
    scenario = {"name": "Notify", "trigger": "TASK_CREATED", "action": "EMAIL_TASK_CONTACTS"}

    cases: list[tuple[str, dict[str, Any], str]] = [
        (ADD_PERSON, person(email="ann\x00@example.test"), "email"),
        (ADD_PERSON, person(email="ann@example.test\x00"), "email"),
        (ADD_PERSON, person(phone="+1555\x001234567"), "phone"),
        (ADD_PERSON, person(telegramChatId="12345\x00"), "telegramChatId"),
        (ADD_PERSON, person(webhookUrl="https://hooks.example.test/\x00x"), "webhookUrl"),
        (ADD_PERSON, person(webhookUrl="https://hooks.example.test/a\r\nX-Evil: 1"), "webhookUrl"),
        (ADD_PERSON, {"input": {"name": "Ann\x00", "email": "a@example.test"}}, "name"),
        (ADD_PERSON, {"input": {"name": "Ann\u009bX"}}, "name"),
        (UPDATE_PERSON, {"id": zed["id"], "input": {"email": "z\x00@example.test"}}, "email"),
        (UPDATE_PERSON, {"id": zed["id"], "input": {"name": "Zed\nBcc: x"}}, "name"),
        (CREATE_TASK, {"title": "Quote\r\nBcc: everyone@example.test"}, "title"),
        (CREATE_TASK, {"title": "Quote\x1b[31m"}, "title"),
        (CREATE_TASK, {"title": "Quote\u2028Bcc: everyone@example.test"}, "title"),
        (ADD_COMMENT, {"taskId": task["id"], "body": "Hello\x00world"}, "body"),
        (ADD_COMMENT, {"taskId": task["id"], "body": "Bell\x07"}, "body"),
        (CREATE_SCENARIO, {"input": {**scenario, "name": "N\x00", "template": "t"}}, "name"),
        (CREATE_SCENARIO, {"input": {**scenario, "name": "N", "template": "t\x00"}}, "template"),
        (UPDATE_ACCOUNT, {"input": {"smtpRelay": "smtp://relay.example.test\x00"}}, "smtpRelay"),
    ]
    for query, variables, field in cases:
        # When it is sent
        error = await refused(beacon.client, query, variables)

        # Then it is BAD_USER_INPUT naming the field, and saying what is wrong
        why = f"{field}: {variables}"
        assert error["extensions"]["code"] == "BAD_USER_INPUT", why
        assert error["extensions"]["field"] == field, why
        assert "control characters" in error["message"], why

    # And nothing was written
    assert await beacon.client.execute(EVERYTHING) == before

    # And a comment keeps its line breaks and tabs
    body = "Line one\r\nLine two\n\tindented"
    comment = await beacon.client.execute(ADD_COMMENT, {"taskId": task["id"], "body": body})
    assert comment["addComment"]["body"] == body


async def test_an_explicit_null_where_null_means_nothing_is_bad_user_input_naming_the_field(
    beacon: Beacon,
) -> None:
    zed = (await beacon.client.execute(ADD_PERSON, person(email="zed@example.test")))["addPerson"]
    before = await beacon.client.execute(EVERYTHING)

    cases: list[tuple[str, dict[str, Any], str]] = [
        (UPDATE_PERSON, {"id": zed["id"], "input": {"trackingConsent": None}}, "trackingConsent"),
        (UPDATE_PERSON, {"id": zed["id"], "input": {"name": None}}, "name"),
        (UPDATE_ACCOUNT, {"input": {"openTracking": None}}, "openTracking"),
        (UPDATE_ACCOUNT, {"input": {"showAllRecipients": None}}, "showAllRecipients"),
        (UPDATE_ACCOUNT, {"input": {"requireTrackingConsent": None}}, "requireTrackingConsent"),
        (UPDATE_ACCOUNT, {"input": {"countMachineOpens": None}}, "countMachineOpens"),
    ]
    for query, variables, field in cases:
        error = await refused(beacon.client, query, variables)

        assert error["extensions"]["code"] == "BAD_USER_INPUT", field
        assert error["extensions"]["field"] == field, field
    assert await beacon.client.execute(EVERYTHING) == before

    # And null still clears what it may clear: an address
    cleared = await beacon.client.execute(
        UPDATE_PERSON, {"id": zed["id"], "input": {"email": None}}
    )
    assert cleared["updatePerson"]["email"] is None


async def test_an_error_repeats_at_most_about_200_characters_of_the_input(beacon: Beacon) -> None:
    long_values: list[tuple[str, dict[str, Any]]] = [
        (ADD_PERSON, person(email="x" * 5_000 + "@example")),
        (ADD_PERSON, person(phone="+1" + "9" * 5_000)),
        (ADD_PERSON, person(telegramChatId="@" + "é" * 5_000)),
        (ADD_PERSON, person(webhookUrl="ftp://" + "h" * 1_500)),
        (UPDATE_PERSON, {"id": "x" * 5_000, "input": {}}),
    ]
    for query, variables in long_values:
        error = await refused(beacon.client, query, variables)

        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert len(error["message"]) <= 300, error["message"][:400]


async def test_create_account_refuses_control_characters_in_the_name_or_email(
    beacon: Beacon,
) -> None:
    for name, email in (("Acme\x1b[2J", "boss@acme.test"), ("Acme", "boss\x07@acme.test")):
        result = await asyncio.to_thread(
            run_cli,
            beacon.server.env,
            "create-account",
            "--name",
            name,
            "--plan",
            "PAID",
            "--email",
            email,
        )

        assert result.returncode == 2, result.stdout
        assert "control characters" in result.stderr, result.stderr
        assert result.stdout == ""
