"""Tokens per person (issue 14, point 1): made by the API or the CLI, shown once,
listed without their secret, revoked from the next request on, and their open
websockets closed."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import websockets

from tests.e2e.helpers import DELIVERY_UPDATED, Beacon, run_cli
from tests.e2e.team_support import (
    CREATE_TOKEN,
    REVOKE_TOKEN,
    WHO_AM_I,
    add_teammate,
)
from tests.support.graphql_client import GraphQLClient, GraphQLError, Subscription
from tests.support.redis_service import REDIS_URL, require_redis
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

TOKENS = """
query Tokens($personId: ID) {
  apiTokens(personId: $personId) { id name personId lastUsedAt revokedAt person { name } }
}
"""


async def revoked_and_closed(beacon: Beacon, token_id: str, subscription: Subscription) -> None:
    """Revoke the token as the owner; its subscription must end within a second, closed
    with 4403 and the reason."""
    await beacon.client.execute(REVOKE_TOKEN, {"id": token_id})
    revoked_at = asyncio.get_running_loop().time()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await subscription.next(timeout=1.0)
    assert asyncio.get_running_loop().time() - revoked_at < 1.0
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
    assert closed.value.rcvd.reason == "API token revoked"


async def test_a_new_token_signs_its_person_in_and_is_listed_without_its_secret(
    beacon: Beacon,
) -> None:
    # given a teammate with a token the owner made for them
    mia = await add_teammate(beacon, "Mia", "mia@acme.test")

    # when they ask who they are
    me = (await mia.client.execute(WHO_AM_I))["viewer"]

    # then they are themselves, a MEMBER
    assert me == {"id": mia.person_id, "name": "Mia", "role": "MEMBER"}
    assert mia.token.startswith("bcn_")
    assert len(mia.token) == len("bcn_") + 43
    # and the owner's list shows the token by name and person, never the secret, with
    # its use recorded
    listed = (await beacon.client.execute(TOKENS, {"personId": mia.person_id}))["apiTokens"]
    assert [(t["id"], t["name"], t["person"]["name"]) for t in listed] == [
        (mia.token_id, "laptop", "Mia")
    ]
    assert listed[0]["lastUsedAt"] is not None
    assert mia.token not in json.dumps(listed)
    everything = (await beacon.client.execute(TOKENS))["apiTokens"]
    assert {t["personId"] for t in everything} == {beacon.account.person_id, mia.person_id}


async def test_a_revoked_token_is_refused_on_the_next_request(beacon: Beacon) -> None:
    # given a teammate who is signed in
    mia = await add_teammate(beacon, "Mia")
    await mia.client.execute(WHO_AM_I)

    # when the owner revokes the token
    revoked = await beacon.client.execute(REVOKE_TOKEN, {"id": mia.token_id})

    # then it is marked revoked and the very next request is refused
    assert revoked["revokeApiToken"]["revokedAt"] is not None
    with pytest.raises(GraphQLError) as refused:
        await mia.client.execute(WHO_AM_I)
    assert refused.value.codes == ["UNAUTHENTICATED"]
    # and the owner's own token still works
    assert (await beacon.client.execute(WHO_AM_I))["viewer"]["role"] == "OWNER"


async def test_a_revoked_tokens_open_subscription_ends_within_a_second(beacon: Beacon) -> None:
    # given a teammate with an open subscription
    mia = await add_teammate(beacon, "Mia")
    async with mia.client.subscribe(DELIVERY_UPDATED, {"taskId": None}) as subscription:
        # when the owner revokes their token
        # then the server closes the websocket within a second, saying why
        await revoked_and_closed(beacon, mia.token_id, subscription)

    # and a new websocket with the token is refused at connection_init
    with pytest.raises(websockets.ConnectionClosed) as refused:
        async with mia.client.subscribe(DELIVERY_UPDATED, {"taskId": None}):
            pass
    assert refused.value.rcvd is not None
    assert refused.value.rcvd.code == 4403


async def test_a_member_manages_their_own_tokens_only(beacon: Beacon) -> None:
    # given a MEMBER
    mia = await add_teammate(beacon, "Mia")

    # when they make a second token for themselves, list and revoke it
    spare = (await mia.client.execute(CREATE_TOKEN, {"personId": mia.person_id, "name": "ci"}))[
        "createApiToken"
    ]
    mine = (await mia.client.execute(TOKENS))["apiTokens"]
    await mia.client.execute(REVOKE_TOKEN, {"id": spare["token"]["id"]})

    # then they saw only their own two tokens
    assert {t["name"] for t in mine} == {"laptop", "ci"}
    assert {t["personId"] for t in mine} == {mia.person_id}
    # but the owner's tokens are not theirs to list, make or revoke
    owner_tokens = (await beacon.client.execute(TOKENS))["apiTokens"]
    owner_token_id = next(t["id"] for t in owner_tokens if t["personId"] != mia.person_id)
    for query, variables in (
        (TOKENS, {"personId": beacon.account.person_id}),
        (CREATE_TOKEN, {"personId": beacon.account.person_id, "name": "mine now"}),
        (REVOKE_TOKEN, {"id": owner_token_id}),
    ):
        with pytest.raises(GraphQLError) as refused:
            await mia.client.execute(query, variables)
        assert refused.value.codes == ["FORBIDDEN"]
        assert "OWNER or ADMIN" in refused.value.errors[0]["message"]
    assert (await beacon.client.execute(WHO_AM_I))["viewer"]["role"] == "OWNER"


async def test_the_cli_mints_a_token_for_an_employee(beacon: Beacon) -> None:
    # when the operator mints a token for the account's owner
    result = await asyncio.to_thread(
        run_cli,
        beacon.server.env,
        "create-token",
        "--account",
        beacon.account.account_id,
        "--person",
        beacon.account.person_id,
        "--name",
        "deploy",
    )

    # then it prints one JSON line whose token signs that person in
    assert result.returncode == 0, result.stderr
    minted = json.loads(result.stdout)
    me = (await beacon.client_for(minted["token"]).execute(WHO_AM_I))["viewer"]
    assert me["id"] == beacon.account.person_id
    names = {t["name"] for t in (await beacon.client.execute(TOKENS))["apiTokens"]}
    assert names == {"first token", "deploy"}

    # and a person of no account gets no token
    other = await beacon.create_account("Other")
    refused = await asyncio.to_thread(
        run_cli,
        beacon.server.env,
        "create-token",
        "--account",
        beacon.account.account_id,
        "--person",
        other.person_id,
    )
    assert refused.returncode == 1
    assert refused.stdout == ""


# Two API nodes share the database and a Redis broadcast; each test run its own channels.
TWO_NODES = {"BROADCAST_URL": REDIS_URL, "BROADCAST_PREFIX": f"team{uuid.uuid4().hex[:8]}."}


@pytest.mark.parametrize("server_env", [TWO_NODES])
async def test_revoking_on_one_node_closes_the_tokens_websocket_on_another(
    beacon: Beacon, database_url: str, tmp_path: Path
) -> None:
    await require_redis()
    # given a second API node, and a teammate subscribed on it
    mia = await add_teammate(beacon, "Mia")
    other = ServerProcess(
        tmp_path / "node-b",
        {
            "DATABASE_URL": database_url,
            "SMTP_URL": beacon.sink.url,
            "EMBEDDED_WORKER": "0",
            **TWO_NODES,
        },
    )
    async with other:
        on_b = GraphQLClient(other.base_url, mia.token)
        try:
            async with on_b.subscribe(DELIVERY_UPDATED, {"taskId": None}) as subscription:
                # when the owner revokes the token on the first node
                # then the second node closes the websocket within a second
                await revoked_and_closed(beacon, mia.token_id, subscription)
        finally:
            await on_b.close()
