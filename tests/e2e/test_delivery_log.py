"""The delivery log, its export and the delivery rates end to end: the real server sends
to the SMTP sink, and the log, the NDJSON/CSV files and the rates are read over HTTP. On
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Beacon
from tests.support.graphql_client import GraphQLClient, GraphQLError
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

LOG = """
query($filter: DeliveryLogFilter, $first: Int, $after: String) {
  deliveries(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id taskId commentId address channel state queuedAt sentAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
STATS = """
query($since: DateTime!, $until: DateTime!, $bucket: RateBucket!) {
  deliveryStats(since: $since, until: $until, bucket: $bucket) {
    since until bucket
    channels {
      channel
      total { sent failed readByPeople readByMachines bounced }
      buckets { start sent }
    }
  }
}
"""
# An address a spreadsheet would run as a formula, were it not quoted.
FORMULA = "=1+2@acme.test"


async def _log(client: GraphQLClient, **variables: Any) -> dict[str, Any]:
    data = await client.execute(LOG, variables)
    page: dict[str, Any] = data["deliveries"]
    return page


async def _all_sent(beacon: Beacon, count: int) -> list[dict[str, Any]]:
    """The log once every one of `count` deliveries is SENT, newest first."""

    async def sent() -> list[dict[str, Any]]:
        page = await _log(beacon.client, filter={"state": "SENT"}, first=50)
        assert len(page["edges"]) == count
        return [edge["node"] for edge in page["edges"]]

    return await eventually(sent)


async def _seed(beacon: Beacon) -> tuple[str, str, list[dict[str, Any]]]:
    """A task to three people (one with a formula-like address) and a comment on it: six
    deliveries, all sent. Returns the task id, the comment id and the log."""
    people = [
        await beacon.add_contact("Ann", "ann@acme.test"),
        await beacon.add_contact("Bob", "bob@acme.test"),
        await beacon.add_contact("Eve", FORMULA),
    ]
    task_id = await beacon.create_task("Roof", people)
    comment = await beacon.add_comment(task_id, "Tiles arrive Monday")
    return task_id, comment["id"], await _all_sent(beacon, 6)


async def test_the_log_pages_the_accounts_deliveries_newest_first_and_filters_them(
    beacon: Beacon,
) -> None:
    # given
    task_id, comment_id, log = await _seed(beacon)

    # then: the comment's three come before the task's own three
    assert [node["commentId"] for node in log] == [comment_id] * 3 + [None] * 3
    assert {node["taskId"] for node in log} == {task_id}
    queued = [node["queuedAt"] for node in log]
    assert queued == sorted(queued, reverse=True)

    # when: pages of four
    first = await _log(beacon.client, first=4)
    rest = await _log(beacon.client, first=4, after=first["pageInfo"]["endCursor"])

    # then
    assert first["pageInfo"]["hasNextPage"] is True
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["id"] for e in first["edges"] + rest["edges"]] == [n["id"] for n in log]

    # and the filters
    by_address = await _log(beacon.client, filter={"address": "bob@acme.test"})
    assert [e["node"]["address"] for e in by_address["edges"]] == ["bob@acme.test"] * 2
    assert (await _log(beacon.client, filter={"state": "FAILED"}))["edges"] == []
    assert (await _log(beacon.client, filter={"channel": "SMS"}))["edges"] == []
    other_task = await beacon.create_task("Empty", [])
    assert (await _log(beacon.client, filter={"taskId": other_task}))["edges"] == []
    later = dt.datetime.fromisoformat(log[0]["queuedAt"]) + dt.timedelta(seconds=1)
    assert (await _log(beacon.client, filter={"since": later.isoformat()}))["edges"] == []


async def test_the_log_refuses_bad_input_and_plans_without_tracking(beacon: Beacon) -> None:
    cases: list[dict[str, Any]] = [
        {"after": "not-a-cursor"},
        {"first": 1000},
        {"filter": {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}},
        {"filter": {"taskId": "nope"}},
        {"filter": {"address": "a\u0000b"}},
    ]
    for variables in cases:
        with pytest.raises(GraphQLError) as raised:
            await _log(beacon.client, **variables)
        assert raised.value.codes == ["BAD_USER_INPUT"], variables

    free = await beacon.create_account("Free", plan="FREE")
    with pytest.raises(GraphQLError) as raised:
        await _log(beacon.client_for(free.token))
    assert raised.value.codes == ["PLAN_REQUIRED"]


async def test_rates_count_the_sent_deliveries_in_their_hour(beacon: Beacon) -> None:
    # given
    _, _, log = await _seed(beacon)
    now = dt.datetime.now(dt.UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    sent_hours = {
        dt.datetime.fromisoformat(node["sentAt"]).replace(minute=0, second=0, microsecond=0)
        for node in log
    }

    # when
    data = await beacon.client.execute(
        STATS,
        {
            "since": (now - dt.timedelta(hours=2)).isoformat(),
            "until": (now + dt.timedelta(minutes=1)).isoformat(),
            "bucket": "HOUR",
        },
    )

    # then: whole hourly buckets; the six sends in the hour they were sent
    stats = data["deliveryStats"]
    assert stats["since"] == (hour - dt.timedelta(hours=2)).isoformat()
    assert len(stats["channels"]) == 1
    email = stats["channels"][0]
    assert email["channel"] == "EMAIL"
    assert email["total"] == {
        "sent": 6, "failed": 0, "readByPeople": 0, "readByMachines": 0, "bounced": 0,
    }  # fmt: skip
    sent = {bucket["start"]: bucket["sent"] for bucket in email["buckets"]}
    assert len(sent) == len(email["buckets"]) in (3, 4)
    assert sum(sent[at.isoformat()] for at in sent_hours) == 6
    assert sum(sent.values()) == 6


async def test_rates_refuse_reversed_and_overlong_ranges(beacon: Beacon) -> None:
    for since, until, bucket in [
        ("2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z", "DAY"),
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "HOUR"),
        ("2030-01-01T00:00:00Z", "2030-03-01T00:00:00Z", "HOUR"),  # 1416 hours
    ]:
        with pytest.raises(GraphQLError) as raised:
            await beacon.client.execute(STATS, {"since": since, "until": until, "bucket": bucket})
        assert raised.value.codes == ["BAD_USER_INPUT"]


# --- Export ---


def _auth(beacon: Beacon) -> dict[str, str]:
    return {"Authorization": f"Bearer {beacon.token}"}


async def test_the_export_streams_the_same_deliveries_as_ndjson_and_as_safe_csv(
    beacon: Beacon,
) -> None:
    # given
    task_id, _, log = await _seed(beacon)

    async with httpx.AsyncClient(base_url=beacon.base_url, headers=_auth(beacon)) as http:
        # when
        ndjson = await http.get("/export/deliveries.ndjson")
        as_csv = await http.get("/export/deliveries.csv", params={"taskId": task_id})
        only_bob = await http.get("/export/deliveries.ndjson", params={"address": "bob@acme.test"})

    # then
    assert ndjson.status_code == 200
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [r["id"] for r in records] == [node["id"] for node in log]
    assert {r["state"] for r in records} == {"SENT"}
    assert FORMULA in {r["address"] for r in records}  # NDJSON keeps the value as it is
    assert [r["address"] for r in (json.loads(x) for x in only_bob.text.splitlines())] == [
        "bob@acme.test"
    ] * 2

    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["id"] for row in rows] == [node["id"] for node in log]
    addresses = {row["address"] for row in rows}
    assert "'" + FORMULA in addresses
    assert FORMULA not in addresses


async def test_the_export_needs_a_token_and_refuses_bad_parameters(beacon: Beacon) -> None:
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        anonymous = await http.get("/export/deliveries.csv")
        wrong = await http.get("/export/deliveries.csv", headers={"Authorization": "Bearer nope"})
        assert anonymous.status_code == wrong.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
        assert anonymous.headers["www-authenticate"] == "Bearer"

        http.headers.update(_auth(beacon))
        cases: list[tuple[Any, str]] = [
            ({"state": "LOST"}, "state"),
            ({"since": "yesterday"}, "since"),
            ({"since": "2030-01-01T00:00:00"}, "since"),  # no time zone
            ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "until"),
            ({"taskId": "x"}, "taskId"),
            ({"colour": "red"}, "colour"),
            ([("channel", "EMAIL"), ("channel", "SMS")], "channel"),
        ]
        for params, field in cases:
            response = await http.get("/export/deliveries.ndjson", params=params)
            assert response.status_code == 400, params
            error = response.json()["error"]
            assert error["code"] == "BAD_USER_INPUT"
            assert error["field"] == field
            assert error["message"]

    free = await beacon.create_account("Free", plan="FREE")
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        response = await http.get(
            "/export/deliveries.csv", headers={"Authorization": f"Bearer {free.token}"}
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PLAN_REQUIRED"
