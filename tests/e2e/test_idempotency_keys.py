"""Idempotency keys against the running server, on SQLite and PostgreSQL: a retry with
the same key gets the first result and sends nothing again, concurrent requests with one
key make one task (or comment, or person) and one email, other input under a used key
is IDEMPOTENCY_KEY_REUSED, keys live 24 hours and belong to one account (ADR 0021)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from db.engine import Database
from db.tables import deliveries, idempotency_keys, tasks
from tests.e2e.helpers import (
    ADD_COMMENT,
    CREATE_TASK,
    Beacon,
    GatedSmtpSink,
    plain_body,
)
from tests.e2e.test_account_rules import settled_status
from tests.e2e.test_account_rules_extended import cli
from tests.support.graphql_client import GraphQLClient
from tests.support.waiting import eventually, sessions_waiting_on_a_lock

CREATE_TASK_WITH_KEY = """
mutation CreateTask($title: String!, $subscriberIds: [ID!]!, $key: String) {
  createTask(input: {title: $title, subscriberIds: $subscriberIds, idempotencyKey: $key}) {
    id title
  }
}
"""

ADD_PERSON = """
mutation AddPerson($name: String!, $email: String) {
  addPerson(input: {name: $name, kind: CONTACT, email: $email}) { id email }
}
"""

RESEND = """
mutation Resend($id: ID!, $key: String) {
  resendDelivery(id: $id, idempotencyKey: $key) { id state events { type } }
}
"""

TWO_TASKS = """
mutation TwoTasks($ids: [ID!]!) {
  first: createTask(input: {title: "One of two", subscriberIds: $ids}) { id }
  second: createTask(input: {title: "Two of two", subscriberIds: $ids}) { id }
}
"""


async def post(
    client: GraphQLClient, query: str, variables: dict[str, Any], key: str | None = None
) -> dict[str, Any]:
    """The whole answer to one POST, with the key in the Idempotency-Key header."""
    headers = client.headers()
    if key is not None:
        headers["Idempotency-Key"] = key
    response = await client.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(answer: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in answer.get("errors") or []]


def emails_about(sink: GatedSmtpSink, text: str) -> int:
    return sum(text in plain_body(received.message) for received in sink.messages)


async def all_sent(beacon: Beacon, contact: str, marker: str) -> None:
    """Every email queued so far has gone: a task created now (after them) to the same
    contact has its email delivered, and the worker takes jobs in the order queued."""
    await beacon.create_task(marker, [contact])
    await beacon.sink.wait_for_text(marker)


async def count(db: Database, query: sa.Executable) -> int:
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


def tasks_titled(title: str) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(tasks).where(tasks.c.title == title)


@pytest.mark.parametrize("through", ["header", "input"])
async def test_concurrent_createtask_requests_with_one_key_make_one_task_and_one_email(
    beacon: Beacon, db: Database, through: str
) -> None:
    # given: a contact with an email address
    ann = await beacon.add_contact("Ann", "ann@example.test")
    clients = [beacon.client_for(beacon.token) for _ in range(4)]

    # when: four requests carrying one key arrive at once, three rounds over
    results = []
    for round_ in range(3):
        key = f"create-{round_}-{uuid.uuid4()}"
        variables = {"title": f"Race {round_}", "subscriberIds": [ann]}
        if through == "input":
            variables["key"] = key
        answers = await asyncio.gather(
            *(
                post(client, CREATE_TASK_WITH_KEY, variables, key if through == "header" else None)
                for client in clients
            )
        )
        results.append(answers)

    # then: each round made one task, and every request got it
    for round_, answers in enumerate(results):
        assert [codes(answer) for answer in answers] == [[]] * 4
        ids = {answer["data"]["createTask"]["id"] for answer in answers}
        assert len(ids) == 1, ids
        assert await count(db, tasks_titled(f"Race {round_}")) == 1
    # and: one email each
    await all_sent(beacon, ann, "After the race")
    for round_ in range(3):
        assert emails_about(beacon.sink, f"Race {round_}") == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_requests_waiting_on_a_held_key_make_one_task_and_one_email_between_them(
    beacon: Beacon, db: Database
) -> None:
    """The race made certain: both requests are inside the server, blocked on the key,
    before either can go on (PostgreSQL: there a writer waits on the key's index entry;
    SQLite's writers take turns, which the test above covers)."""
    ann = await beacon.add_contact("Ann", "ann@example.test")
    clients = [beacon.client_for(beacon.token) for _ in range(2)]
    variables = {"title": "Held", "subscriberIds": [ann]}

    # given: a transaction that holds the key, as a request still in flight would
    async with db.engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            idempotency_keys.insert().values(
                account_id=uuid.UUID(beacon.account.account_id),
                key="held",
                mutation="createTask",
                input_hash="0" * 64,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
        # when: two requests with the key come meanwhile
        answers = asyncio.gather(
            *(post(client, CREATE_TASK, variables, "held") for client in clients)
        )
        await eventually(lambda: sessions_waiting_on_a_lock(db, 2))
        # and the holder gives up (a request that failed after taking the key)
        await holder.rollback()
    done = await answers

    # then: one of them made the task, the other waited for it and answered it too
    assert [codes(answer) for answer in done] == [[], []]
    assert len({answer["data"]["createTask"]["id"] for answer in done}) == 1
    assert await count(db, tasks_titled("Held")) == 1
    await all_sent(beacon, ann, "After the wait")
    assert emails_about(beacon.sink, "Held") == 1


async def test_concurrent_addcomment_requests_with_one_key_make_one_comment_and_one_email(
    beacon: Beacon,
) -> None:
    # given: a task with a subscriber
    ann = await beacon.add_contact("Ann", "ann@example.test")
    task_id = await beacon.create_task("Launch", [ann])
    clients = [beacon.client_for(beacon.token) for _ in range(4)]

    # when: four requests carrying one key add the same comment at once
    key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            post(client, ADD_COMMENT, {"taskId": task_id, "body": "Ready to go"}, key)
            for client in clients
        )
    )

    # then: one comment, returned to all four, and one email about it
    assert [codes(answer) for answer in answers] == [[]] * 4
    assert len({answer["data"]["addComment"]["id"] for answer in answers}) == 1
    data = await beacon.client.execute(
        "query($id: ID!) { task(id: $id) { comments { edges { node { body } } } } }",
        {"id": task_id},
    )
    assert [edge["node"]["body"] for edge in data["task"]["comments"]["edges"]] == ["Ready to go"]
    await all_sent(beacon, ann, "After the comment")
    assert emails_about(beacon.sink, "Ready to go") == 1


async def test_concurrent_addperson_requests_with_one_key_make_one_person(
    beacon: Beacon,
) -> None:
    # when: two requests carrying one key add the same person at once (without a key
    # the second would be told the address is taken)
    key = str(uuid.uuid4())
    clients = [beacon.client_for(beacon.token) for _ in range(2)]
    answers = await asyncio.gather(
        *(
            post(client, ADD_PERSON, {"name": "Bo", "email": "bo@example.test"}, key)
            for client in clients
        )
    )

    # then: both got the one person
    assert [codes(answer) for answer in answers] == [[], []]
    assert len({answer["data"]["addPerson"]["id"] for answer in answers}) == 1
    people = await beacon.client.execute("{ people { email } }")
    assert [p["email"] for p in people["people"]].count("bo@example.test") == 1


async def test_a_retry_with_the_same_key_returns_the_first_task_and_sends_nothing_again(
    beacon: Beacon, db: Database
) -> None:
    # given: a task created with a key, its email delivered
    ann = await beacon.add_contact("Ann", "ann@example.test")
    key = "order-4711"
    first = await post(beacon.client, CREATE_TASK, {"title": "Once", "subscriberIds": [ann]}, key)
    await beacon.sink.wait_for_text("Once")

    # when: the client retries (as after a lost answer), and later once more
    again = await post(beacon.client, CREATE_TASK, {"title": "Once", "subscriberIds": [ann]}, key)
    third = await post(beacon.client, CREATE_TASK, {"title": "Once", "subscriberIds": [ann]}, key)

    # then: the first task each time, and nothing new was queued or sent
    assert codes(again) == codes(third) == []
    assert again["data"] == third["data"] == first["data"]
    assert await count(db, tasks_titled("Once")) == 1
    await all_sent(beacon, ann, "Marker")
    assert emails_about(beacon.sink, "Once") == 1
    assert await count(db, sa.select(sa.func.count()).select_from(deliveries)) == 2


async def test_a_retried_resend_returns_the_delivery_and_resends_it_once(beacon: Beacon) -> None:
    # given: a delivery the mail server refused for good
    bob = await beacon.add_contact("Bob", "deny-bob@example.test")
    task_id = await beacon.create_task("Ship v2", [bob])
    (failed,) = (await settled_status(beacon, task_id))["deliveries"]
    assert failed["state"] == "FAILED"

    # when: it is resent with a key, and the resend is retried with the same key
    key = str(uuid.uuid4())
    async with beacon.sink.holding():
        first = await beacon.client.execute(RESEND, {"id": failed["id"], "key": key})
        again = await beacon.client.execute(RESEND, {"id": failed["id"], "key": key})

    # then: the retry is not refused for "not FAILED any more"; one resend happened
    assert first["resendDelivery"]["id"] == again["resendDelivery"]["id"] == failed["id"]
    assert first["resendDelivery"]["state"] == "QUEUED"
    events = [e["type"] for e in again["resendDelivery"]["events"]]
    assert events.count("resend_requested") == 1


async def test_concurrent_resends_with_one_key_resend_once(beacon: Beacon) -> None:
    # given: a delivery the mail server refused for good
    bob = await beacon.add_contact("Bob", "deny-bob@example.test")
    task_id = await beacon.create_task("Ship v3", [bob])
    (failed,) = (await settled_status(beacon, task_id))["deliveries"]
    clients = [beacon.client_for(beacon.token) for _ in range(3)]

    # when: three resends carrying one key arrive at once
    key = str(uuid.uuid4())
    async with beacon.sink.holding():
        answers = await asyncio.gather(
            *(post(client, RESEND, {"id": failed["id"], "key": key}) for client in clients)
        )

    # then: none is refused for "not FAILED any more", and the delivery was resent once
    assert [codes(answer) for answer in answers] == [[]] * 3
    delivery = await beacon.delivery(failed["id"])
    assert [e["type"] for e in delivery["events"]].count("resend_requested") == 1


async def test_the_same_key_with_other_input_is_refused_naming_the_first_mutation(
    beacon: Beacon, db: Database
) -> None:
    # given: a key used for a task
    ann = await beacon.add_contact("Ann", "ann@example.test")
    key = str(uuid.uuid4())
    made = await post(beacon.client, CREATE_TASK, {"title": "First", "subscriberIds": [ann]}, key)
    task_id = made["data"]["createTask"]["id"]

    # when: the key comes again with another title, and with another mutation
    other_title = await post(
        beacon.client, CREATE_TASK, {"title": "Second", "subscriberIds": [ann]}, key
    )
    other_mutation = await post(beacon.client, ADD_COMMENT, {"taskId": task_id, "body": "Hi"}, key)

    # then: both are refused, naming createTask, and nothing was written
    for answer in (other_title, other_mutation):
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert error["extensions"]["mutation"] == "createTask"
        assert "createTask" in error["message"]
        assert answer["data"] is None
    assert await count(db, tasks_titled("Second")) == 0
    data = await beacon.client.execute(
        "query($id: ID!) { task(id: $id) { comments { edges { node { id } } } } }",
        {"id": task_id},
    )
    assert data["task"]["comments"]["edges"] == []


async def test_an_expired_key_makes_a_new_task_and_the_purge_deletes_expired_keys(
    beacon: Beacon, db: Database
) -> None:
    # given: two keys used more than 24 hours ago (the server shares the database)
    ann = await beacon.add_contact("Ann", "ann@example.test")
    variables = {"title": "Daily report", "subscriberIds": [ann]}
    first = await post(beacon.client, CREATE_TASK, variables, "daily")
    await post(beacon.client, CREATE_TASK, {**variables, "title": "Other"}, "purged")
    async with db.write() as conn:
        await conn.execute(
            idempotency_keys.update().values(
                created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=24, minutes=1)
            )
        )

    # when: one key is used again before any purge
    again = await post(beacon.client, CREATE_TASK, variables, "daily")

    # then: it made a new task, and sent its email
    assert codes(again) == []
    assert again["data"]["createTask"]["id"] != first["data"]["createTask"]["id"]
    assert await count(db, tasks_titled("Daily report")) == 2

    # when: the purge runs
    await cli(beacon, "purge")

    # then: the other expired key is gone, the renewed one stays
    async with db.read() as conn:
        keys = (await conn.execute(sa.select(idempotency_keys.c.key))).scalars().all()
    assert keys == ["daily"]


async def test_a_key_belongs_to_one_account(beacon: Beacon, db: Database) -> None:
    # given: a key used by one account
    ann = await beacon.add_contact("Ann", "ann@example.test")
    key = "shared-key"
    mine = await post(beacon.client, CREATE_TASK, {"title": "Mine", "subscriberIds": [ann]}, key)

    # when: another account uses the same key with the same input
    other = beacon.client_for((await beacon.create_account("Globex")).token)
    theirs = await post(other, CREATE_TASK, {"title": "Mine", "subscriberIds": []}, key)

    # then: it is their own key: a task of their own, no error
    assert codes(theirs) == []
    assert theirs["data"]["createTask"]["id"] != mine["data"]["createTask"]["id"]
    assert await count(db, tasks_titled("Mine")) == 2


async def test_a_header_key_with_two_such_mutations_in_one_request_is_refused(
    beacon: Beacon, db: Database
) -> None:
    # when: a request with a header key creates two tasks
    answer = await post(beacon.client, TWO_TASKS, {"ids": []}, "one-key")

    # then: it is refused as bad input (the first error ends a mutation request whose
    # fields are non-null), and nothing was written
    assert set(codes(answer)) == {"BAD_USER_INPUT"}
    assert answer["data"] is None
    assert "one mutation" in answer["errors"][0]["message"]
    assert await count(db, tasks_titled("One of two")) == 0
    assert await count(db, tasks_titled("Two of two")) == 0
    assert await count(db, sa.select(sa.func.count()).select_from(idempotency_keys)) == 0


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("x" * 256, "longer than 255"),
        ("", "empty"),
        ("caf\u00e9", "printable ASCII"),
        ("tab\there", "printable ASCII"),
    ],
)
async def test_a_key_too_long_or_not_printable_ascii_is_refused(
    beacon: Beacon, db: Database, key: str, problem: str
) -> None:
    answer = await post(
        beacon.client, CREATE_TASK_WITH_KEY, {"title": "T", "subscriberIds": [], "key": key}
    )

    (error,) = answer["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "idempotencyKey"}
    assert problem in error["message"]
    assert await count(db, tasks_titled("T")) == 0


async def test_a_key_of_255_printable_characters_is_taken(beacon: Beacon) -> None:
    key = "".join(chr(32 + i % 95) for i in range(255))
    variables = {"title": "Long key", "subscriberIds": [], "key": key}

    first = await post(beacon.client, CREATE_TASK_WITH_KEY, variables)
    again = await post(beacon.client, CREATE_TASK_WITH_KEY, variables)

    assert codes(first) == codes(again) == []
    assert first["data"] == again["data"]


async def test_a_bad_header_key_or_one_that_contradicts_the_input_is_refused(
    beacon: Beacon, db: Database
) -> None:
    variables = {"title": "Header", "subscriberIds": [], "key": "in-the-input"}

    too_long = await post(
        beacon.client, CREATE_TASK, {"title": "Header", "subscriberIds": []}, "x" * 256
    )
    contradicts = await post(beacon.client, CREATE_TASK_WITH_KEY, variables, "in-the-header")
    agrees = await post(beacon.client, CREATE_TASK_WITH_KEY, variables, "in-the-input")

    (error,) = too_long["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "Idempotency-Key"}
    (error,) = contradicts["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "idempotencyKey"}
    assert "differ" in error["message"]
    assert codes(agrees) == []
    assert await count(db, tasks_titled("Header")) == 1
