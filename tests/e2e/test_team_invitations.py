"""Invitations (issue 14, point 3): invitePerson emails an employee a sign-in link
through the outbox (its delivery tracked like any); redeeming it is a POST that works
once, within 7 days; only a hash of the secret is stored."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import httpx
import pytest

from db.engine import Database
from db.tables import invitations
from tests.e2e.helpers import Beacon, caused_by_comment, plain_body
from tests.e2e.team_support import ADD_EMPLOYEE, WHO_AM_I, add_teammate
from tests.e2e.test_team_changes import every_row
from tests.support.graphql_client import GraphQLError
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

INVITE = """
mutation I($personId: ID!) {
  invitePerson(personId: $personId) { id personId expiresAt deliveryId }
}
"""

REDEEM = """
mutation R($secret: String!) {
  redeemInvitation(secret: $secret) { secret token { name person { id name role } } }
}
"""

DELIVERY = "query D($id: ID!) { delivery(id: $id) { state channel address } }"

LINK = re.compile(r"(http://\S+)/#/invitation/(\S+)")


async def invited(beacon: Beacon, name: str, email: str) -> tuple[str, dict[str, str]]:
    """An employee, and the invitation the owner sent them: (person id, invitation)."""
    added = await beacon.client.execute(ADD_EMPLOYEE, {"name": name, "email": email})
    person_id = str(added["addPerson"]["id"])
    sent = await beacon.client.execute(INVITE, {"personId": person_id})
    return person_id, sent["invitePerson"]


async def test_an_invited_employee_signs_in_once_with_the_emailed_link(
    beacon: Beacon, database_url: str
) -> None:
    # given the owner watching the account's live updates
    async with beacon.subscribe() as log:
        # when they invite Mia
        mia, invitation = await invited(beacon, "Mia", "mia@acme.test")

        # then Mia gets an email with a link to the dashboard, and no pixel
        received = await beacon.sink.wait_for_text("/#/invitation/")
        assert received.rcpt_tos == ("mia@acme.test",)
        assert received.message["Subject"] == "[Beacon] You are invited to sign in"
        assert "owner invited you to Acme on Beacon." in plain_body(received.message)
        assert b"/p/" not in received.raw
        found = LINK.search(plain_body(received.message))
        assert found is not None
        assert found.group(1) == beacon.base_url
        secret = found.group(2)
        # and its delivery is tracked like any other
        expires = dt.datetime.fromisoformat(invitation["expiresAt"])
        assert (
            dt.timedelta(days=6, hours=23)
            < expires - dt.datetime.now(dt.UTC)
            <= dt.timedelta(days=7)
        )

        async def sent() -> None:
            data = await beacon.client.execute(DELIVERY, {"id": invitation["deliveryId"]})
            assert data["delivery"] == {
                "state": "SENT",
                "channel": "EMAIL",
                "address": "mia@acme.test",
            }

        await eventually(sent)
        # and the account's live feed goes on (an invitation is no task's update)
        carl = await beacon.add_contact("Carl", "carl@client.test")
        task_id = await beacon.create_task("Plan", [carl])
        _, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "still live"), caused_by_comment
        )
        assert update["taskId"] == task_id

    # when a mail scanner fetches the link, and something tries to redeem it over GET
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        page = await http.get(f"/#/invitation/{secret}")
        over_get = await http.get(
            "/graphql",
            params={"query": f'mutation {{ redeemInvitation(secret: "{secret}") {{ secret }} }}'},
        )
    assert page.status_code == 200
    assert over_get.status_code in (400, 405)

    # then the link still works, once, by POST, and signs Mia in as herself
    anonymous = beacon.client_for(None)
    redeemed = (await anonymous.execute(REDEEM, {"secret": secret}))["redeemInvitation"]
    assert redeemed["token"]["person"] == {"id": mia, "name": "Mia", "role": "MEMBER"}
    assert redeemed["token"]["name"] == "invitation"
    me = await beacon.client_for(redeemed["secret"]).execute(WHO_AM_I)
    assert me["viewer"]["id"] == mia
    # and a second use is refused
    with pytest.raises(GraphQLError) as again:
        await anonymous.execute(REDEEM, {"secret": secret})
    assert again.value.codes == ["INVITATION_INVALID"]
    # and no table holds the link's secret, only its hash
    assert [row for row in await every_row(database_url) if secret in row[2]] == []


async def test_an_expired_or_forged_invitation_is_refused(
    beacon: Beacon, database_url: str
) -> None:
    # given an invitation whose 7 days are over
    _, invitation = await invited(beacon, "Mia", "mia@acme.test")
    received = await beacon.sink.wait_for_text("/#/invitation/")
    found = LINK.search(plain_body(received.message))
    assert found is not None
    database = Database(database_url)
    try:
        async with database.write() as conn:
            await conn.execute(
                invitations.update()
                .where(invitations.c.id == uuid.UUID(invitation["id"]))
                .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
    finally:
        await database.dispose()

    # when it is redeemed, or a made-up secret is
    anonymous = beacon.client_for(None)
    for secret in (found.group(2), "A" * 43, "not a secret", found.group(2)[:-1] + "B"):
        with pytest.raises(GraphQLError) as refused:
            await anonymous.execute(REDEEM, {"secret": secret})

        # then it is refused, and nobody was signed in
        assert refused.value.codes == ["INVITATION_INVALID"]
    tokens = await beacon.client.execute("query { apiTokens { name } }")
    assert [t["name"] for t in tokens["apiTokens"]] == ["first token"]


async def test_only_an_owner_or_admin_invites_and_only_an_employee_with_an_email(
    beacon: Beacon,
) -> None:
    mia = await add_teammate(beacon, "Mia", "mia@acme.test")
    contact = await beacon.add_contact("Carl", "carl@client.test")
    no_email = (await beacon.client.execute(ADD_EMPLOYEE, {"name": "Ned", "email": None}))[
        "addPerson"
    ]["id"]

    with pytest.raises(GraphQLError) as member:
        await mia.client.execute(INVITE, {"personId": mia.person_id})
    assert member.value.codes == ["FORBIDDEN"]
    for person_id in (contact, no_email):
        with pytest.raises(GraphQLError) as refused:
            await beacon.client.execute(INVITE, {"personId": person_id})
        assert refused.value.codes == ["BAD_USER_INPUT"]


async def test_an_invitations_email_is_in_the_delivery_log_and_export_with_no_task(
    beacon: Beacon,
) -> None:
    # given an invitation, whose email belongs to no task
    _, invitation = await invited(beacon, "Noa", "noa@acme.test")
    await beacon.sink.wait_for_text("/#/invitation/")

    # then the delivery, the delivery log and the export all say "no task" as null
    data = await beacon.client.execute(
        "query D($id: ID!) { delivery(id: $id) { taskId commentId } }",
        {"id": invitation["deliveryId"]},
    )
    assert data["delivery"] == {"taskId": None, "commentId": None}
    log = await beacon.client.execute(
        "query L($f: DeliveryLogFilter) {"
        " deliveries(filter: $f) { edges { node { id taskId } } } }",
        {"f": {"address": "noa@acme.test"}},
    )
    assert [edge["node"] for edge in log["deliveries"]["edges"]] == [
        {"id": invitation["deliveryId"], "taskId": None}
    ]
    exported = await beacon.client.http.get(
        "/export/deliveries.ndjson",
        params={"address": "noa@acme.test"},
        headers=beacon.client.headers(),
    )
    assert exported.status_code == 200, exported.text
    (line,) = exported.text.splitlines()
    assert json.loads(line)["taskId"] is None, line
