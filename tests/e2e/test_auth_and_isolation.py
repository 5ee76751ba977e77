"""Sign-in over HTTP, one account never reaching another's data, and bad requests
answered with a clear error (never a 500, never a partial write)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    DELIVERY,
    Beacon,
    caused_by_comment,
)
from tests.support.graphql_client import GraphQLClient, GraphQLError
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

VIEWER = "query { viewer { id name } }"

TASK = """
query Task($id: ID!) {
  task(id: $id) { id title comments { edges { node { id body } } } }
}
"""

TASK_DELIVERIES = """
query TaskDeliveries($id: ID!) {
  task(id: $id) { deliveryStatus { queued deliveries { id state } } }
}
"""

RESEND = """
mutation Resend($id: ID!) {
  resendDelivery(id: $id) { id state }
}
"""

EVERYTHING = """
query Everything {
  people { id }
  tasks { edges { node { id title comments { edges { node { id } } } } } }
}
"""

CREATE_TASK_FOR_ANYONE = """
mutation CreateTask($title: String!, $subscriberIds: [ID!]!) {
  createTask(input: {title: $title, subscriberIds: $subscriberIds}) { id }
}
"""

ADD_PERSON = """
mutation AddPerson($email: String) {
  addPerson(input: {name: "Zed", email: $email}) { id }
}
"""

ADD_COMMENT = """
mutation AddComment($taskId: ID!) {
  addComment(input: {taskId: $taskId, body: "hello"}) { id }
}
"""


async def error_codes(client: GraphQLClient, query: str, variables: dict[str, Any]) -> list[Any]:
    with pytest.raises(GraphQLError) as raised:
        await client.execute(query, variables)
    return raised.value.codes


async def settled_deliveries(client: GraphQLClient, task_id: str) -> list[dict[str, Any]]:
    """The task's deliveries once none is queued any more."""

    async def check() -> list[dict[str, Any]]:
        data = await client.execute(TASK_DELIVERIES, {"id": task_id})
        status = data["task"]["deliveryStatus"]
        assert status["queued"] == 0
        deliveries: list[dict[str, Any]] = status["deliveries"]
        return deliveries

    return await eventually(check)


async def test_given_no_or_a_wrong_token_when_http_asks_anything_then_it_is_unauthenticated(
    beacon: Beacon,
) -> None:
    async with httpx.AsyncClient(base_url=beacon.base_url, timeout=10) as http:
        for authorization in (
            None,
            "",
            "Bearer",
            "Bearer bcn_not-a-real-token",
            "Basic dXNlcjpwYXNz",
            beacon.token,  # the right token without its scheme
        ):
            headers = {} if authorization is None else {"Authorization": authorization}
            for query, variables in (
                (VIEWER, {}),
                (TASK, {"id": str(uuid.uuid4())}),
                (ADD_PERSON, {"email": "zed@example.test"}),
            ):
                # When it asks without a valid token
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                )

                # Then it errs with UNAUTHENTICATED and answers nothing
                assert response.status_code < 500
                body = response.json()
                codes = {error["extensions"]["code"] for error in body["errors"]}
                assert codes == {"UNAUTHENTICATED"}, (authorization, query, body)
                assert not any((body.get("data") or {}).values()), body

    # And nothing was written by those attempts
    data = await beacon.client.execute(EVERYTHING)
    assert [p["id"] for p in data["people"]] == [beacon.account.person_id]


async def test_given_two_accounts_when_the_second_reaches_for_the_firsts_task_then_it_finds_nothing_and_hears_nothing(  # noqa: E501
    beacon: Beacon,
) -> None:
    # Given account A (the fixture's) with a task, a comment and its delivery
    ann = await beacon.add_contact("Ann", "ann@example.test")
    task_a = await beacon.create_task("A's secret plan", [ann])
    await settled_deliveries(beacon.client, task_a)

    # And account B, made with the CLI while the server runs, with a task of its own
    account_b = await beacon.create_account("Globex")
    b = beacon.client_for(account_b.token)
    bea = await beacon.add_contact("Bea", "bea@globex.test", client=b)
    task_b = await beacon.create_task("B's own plan", [bea], client=b)
    await settled_deliveries(b, task_b)

    async with (
        beacon.subscribe(client=b) as b_hears,
        beacon.subscribe(task_a) as a_hears,
    ):
        # B's account-wide subscription is listening: it hears B's own comment
        await b_hears.trigger(
            lambda: beacon.add_comment(task_b, "B, one", client=b), caused_by_comment
        )

        # When A comments, and the delivery is sent (A's own subscription sees it all)
        comment_a, _ = await a_hears.trigger(
            lambda: beacon.add_comment(task_a, "A, one"), caused_by_comment
        )
        sent = await a_hears.until(
            lambda u: u["commentId"] == comment_a["id"] and u["delivery"]["state"] == "SENT"
        )
        delivery_a = sent["delivery"]["id"]

        # And then B comments again
        await b_hears.trigger(
            lambda: beacon.add_comment(task_b, "B, two", client=b), caused_by_comment
        )

        # Then everything B heard, up to its own second comment, was B's own
        assert {u["taskId"] for u in b_hears.updates} == {task_b}
        assert {u["delivery"]["address"] for u in b_hears.updates} == {"bea@globex.test"}

    # And B cannot read A's task or delivery: they do not exist for B
    assert (await b.execute(TASK, {"id": task_a}))["task"] is None
    assert (await b.execute(DELIVERY, {"id": delivery_a}))["delivery"] is None

    # And B cannot comment on A's task, nor resend A's delivery
    assert await error_codes(b, ADD_COMMENT, {"taskId": task_a}) == ["NOT_FOUND"]
    assert await error_codes(b, RESEND, {"id": delivery_a}) == ["NOT_FOUND"]

    # And B cannot put A's contact on a task of its own
    assert await error_codes(
        b, CREATE_TASK_FOR_ANYONE, {"title": "Poach", "subscriberIds": [ann]}
    ) == ["BAD_USER_INPUT"]

    # And B cannot subscribe to A's task
    with pytest.raises(GraphQLError) as raised:
        async with beacon.subscribe(task_a, client=b) as denied:
            await denied.subscription.next()
    assert raised.value.codes == ["NOT_FOUND"]

    # And A's task still has only A's comment
    data = await beacon.client.execute(TASK, {"id": task_a})
    assert [e["node"]["body"] for e in data["task"]["comments"]["edges"]] == ["A, one"]


async def test_given_bad_input_when_a_mutation_or_query_is_sent_then_it_is_bad_user_input_and_nothing_is_written(  # noqa: E501
    beacon: Beacon,
) -> None:
    # Given a task whose delivery was sent (so it is not FAILED)
    ann = await beacon.add_contact("Ann", "ann@example.test")
    task_id = await beacon.create_task("Ship v2", [ann])
    (delivery,) = await settled_deliveries(beacon.client, task_id)
    assert delivery["state"] == "SENT"
    before = await beacon.client.execute(EVERYTHING)
    delivery_before = await beacon.delivery(delivery["id"])

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("an empty title", CREATE_TASK_FOR_ANYONE, {"title": "", "subscriberIds": [ann]}),
        ("a blank title", CREATE_TASK_FOR_ANYONE, {"title": "   ", "subscriberIds": [ann]}),
        (
            "a malformed subscriber id",
            CREATE_TASK_FOR_ANYONE,
            {"title": "T", "subscriberIds": ["not-an-id"]},
        ),
        (
            "an unknown subscriber id",
            CREATE_TASK_FOR_ANYONE,
            {"title": "T", "subscriberIds": [ann, str(uuid.uuid4())]},
        ),
        ("a malformed task id", ADD_COMMENT, {"taskId": "not-an-id"}),
        ("a malformed id in a query", TASK, {"id": "42"}),
        ("a malformed delivery id", DELIVERY, {"id": "not-an-id"}),
        ("a bad email", ADD_PERSON, {"email": "not-an-email"}),
        ("an email with a display name", ADD_PERSON, {"email": "Zed <zed@example.test>"}),
        ("a resend of a SENT delivery", RESEND, {"id": delivery["id"]}),
    ]
    for why, query, variables in cases:
        # When it is sent
        codes = await error_codes(beacon.client, query, variables)

        # Then the answer is BAD_USER_INPUT
        assert codes == ["BAD_USER_INPUT"], why

    # And nothing was written
    assert await beacon.client.execute(EVERYTHING) == before
    assert await beacon.delivery(delivery["id"]) == delivery_before
    assert len(beacon.sink.messages) == 1


async def test_given_a_request_that_is_not_graphql_when_it_is_posted_then_the_answer_is_a_4xx_not_a_500(  # noqa: E501
    beacon: Beacon,
) -> None:
    headers = {"Authorization": f"Bearer {beacon.token}"}
    graphql_response = "application/graphql-response+json"
    async with httpx.AsyncClient(base_url=beacon.base_url, timeout=10) as http:
        for why, content, content_type in (
            ("a body that is not JSON", b"{not json", "application/json"),
            ("a JSON body without a query", b'{"variables": {}}', "application/json"),
            ("a JSON list", b"[]", "application/json"),
            ("plain text", b"viewer", "text/plain"),
        ):
            # When it is posted
            response = await http.post(
                "/graphql",
                content=content,
                headers={**headers, "Content-Type": content_type},
            )
            # Then it is a client error
            assert 400 <= response.status_code < 500, (why, response.status_code)

        # When a broken or invalid document is posted, asking for the GraphQL media type
        for why, query, code in (
            ("a syntax error", "{ viewer {", "GRAPHQL_PARSE_FAILED"),
            ("an unknown field", "{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ):
            response = await http.post(
                "/graphql",
                json={"query": query},
                headers={**headers, "Accept": graphql_response},
            )
            # Then it is a 400 with the error in GraphQL form
            assert response.status_code == 400, why
            assert response.headers["content-type"].startswith(graphql_response), why
            assert [e["extensions"]["code"] for e in response.json()["errors"]] == [code]

            # And with plain JSON (GraphQL-over-HTTP's legacy media type) an error, no 500
            response = await http.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code < 500, why
            assert [e["extensions"]["code"] for e in response.json()["errors"]] == [code]

        # When a mutation comes over GET
        response = await http.get(
            "/graphql",
            params={"query": "mutation { updateAccount(input: {openTracking: false}) { id } }"},
            headers=headers,
        )
        # Then it is refused, and not run
        assert 400 <= response.status_code < 500
    account = await beacon.client.execute("query { account { openTracking } }")
    assert account["account"]["openTracking"] is True
