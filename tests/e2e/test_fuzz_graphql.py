"""Generated GraphQL documents against the real server: whatever a client sends, the
answer is a GraphQL result or a 4xx, never a 500 and never an unexpected error.

Documents come from hypothesis-graphql over the committed `schema.graphql`: valid
queries and mutations with arbitrary arguments (ids that name nothing, strings with
control characters, huge numbers, nulls), and documents with one schema violation each.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from tests.e2e.helpers import Beacon
from tests.support.server import ROOT
from tests.support.services import IN_CI

pytestmark = pytest.mark.e2e

SDL = (ROOT / "schema.graphql").read_text()

# The one custom scalar: ISO 8601 strings, sometimes valid.
DATE_TIMES = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda value: value.isoformat()),
    st.text(max_size=40),
).map(nodes.String)

VALID_DOCUMENTS = from_schema(SDL, custom_scalars={"DateTime": DATE_TIMES})
INVALID_DOCUMENTS = from_schema(SDL, custom_scalars={"DateTime": DATE_TIMES}, mode=Mode.NEGATIVE)

# An error a client caused has a code saying what; these mean the server failed.
SERVER_FAULTS = {"INTERNAL_SERVER_ERROR", None}

FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    # CI checks the same documents every run (a landing is never decided by luck);
    # elsewhere every run explores new ones.
    derandomize=IN_CI,
    # One server serves every example of a test: that is the point of the fixture.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def post(beacon: Beacon, document: str) -> httpx.Response:
    return await beacon.client.http.post(
        "/graphql",
        json={"query": document},
        headers={**beacon.client.headers(), "Accept": "application/graphql-response+json"},
    )


def assert_a_clear_answer(response: httpx.Response, document: str) -> list[dict[str, Any]]:
    assert response.status_code < 500, (response.status_code, document, response.text[:500])
    body = response.json()
    errors: list[dict[str, Any]] = body.get("errors") or []
    faults = [e for e in errors if (e.get("extensions") or {}).get("code") in SERVER_FAULTS]
    assert not faults, (document, faults)
    return errors


@settings(FUZZ_SETTINGS, max_examples=300)
@given(document=VALID_DOCUMENTS)
async def test_generated_queries_and_mutations_never_get_a_server_error(
    beacon: Beacon, document: str
) -> None:
    response = await post(beacon, document)
    assert_a_clear_answer(response, document)


@settings(FUZZ_SETTINGS, max_examples=100)
@given(document=INVALID_DOCUMENTS)
async def test_documents_that_break_the_schema_are_refused_with_a_validation_code(
    beacon: Beacon, document: str
) -> None:
    response = await post(beacon, document)
    errors = assert_a_clear_answer(response, document)
    assert response.status_code == 400, (document, response.text[:500])
    assert errors, document
    assert "data" not in response.json(), document
