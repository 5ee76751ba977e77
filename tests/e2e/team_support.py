"""What the team's end-to-end tests share: teammates with their own tokens."""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e.helpers import Beacon
from tests.support.graphql_client import GraphQLClient

ADD_EMPLOYEE = """
mutation AddEmployee($name: String!, $email: String) {
  addPerson(input: {name: $name, kind: EMPLOYEE, email: $email}) { id role }
}
"""

CREATE_TOKEN = """
mutation CreateToken($personId: ID!, $name: String!) {
  createApiToken(personId: $personId, name: $name) {
    secret
    token { id name personId createdAt lastUsedAt revokedAt person { id name } }
  }
}
"""

REVOKE_TOKEN = """
mutation Revoke($id: ID!) { revokeApiToken(id: $id) { id revokedAt } }
"""

SET_ROLE = """
mutation SetRole($personId: ID!, $role: Role!) {
  setRole(personId: $personId, role: $role) { id role }
}
"""

WHO_AM_I = "query { viewer { id name role } }"


@dataclass
class Teammate:
    person_id: str
    token_id: str
    token: str
    client: GraphQLClient


async def add_teammate(
    beacon: Beacon, name: str, email: str | None = None, role: str = "MEMBER"
) -> Teammate:
    """An employee added by the owner, with a token of their own (and `role`)."""
    added = await beacon.client.execute(ADD_EMPLOYEE, {"name": name, "email": email})
    person_id = added["addPerson"]["id"]
    assert added["addPerson"]["role"] == "MEMBER"
    if role != "MEMBER":
        await beacon.client.execute(SET_ROLE, {"personId": person_id, "role": role})
    created = await beacon.client.execute(CREATE_TOKEN, {"personId": person_id, "name": "laptop"})
    secret = created["createApiToken"]["secret"]
    return Teammate(
        person_id=person_id,
        token_id=created["createApiToken"]["token"]["id"],
        token=secret,
        client=beacon.client_for(secret),
    )
