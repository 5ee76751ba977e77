"""The codes of limit errors: strawberry's limiters and graphql-core's parser say what
went wrong in words, and `web.limits` turns the words into codes. These tests pin the
words of the installed versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLError

from schema import BeaconSchema
from tests.support.builders import make_settings
from web.graphql import build_schema
from web.limits import PARSE_FAILED, VALIDATION_FAILED, code_for_message, tag


@pytest.fixture
def schema(tmp_path: Path) -> BeaconSchema:
    settings = make_settings(
        tmp_path, GRAPHQL_MAX_DEPTH="3", GRAPHQL_MAX_TOKENS="50", GRAPHQL_MAX_ALIASES="2"
    )
    return build_schema(settings)


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("{ task(id: 1) { comments { edges { node { id } } } } }", "QUERY_TOO_DEEP"),
        ("{ a: viewer { id } b: viewer { id } c: viewer { id } }", "TOO_MANY_ALIASES"),
        ("{ viewer { " + "id " * 60 + "} }", "QUERY_TOO_LARGE"),
        ("{ viewer { nope } }", VALIDATION_FAILED),
        ("{ viewer { id }", PARSE_FAILED),
    ],
    ids=["depth", "aliases", "tokens", "unknown field", "syntax"],
)
async def test_a_document_past_a_limit_is_refused_with_the_limits_code(
    schema: BeaconSchema, document: str, code: str
) -> None:
    result = await schema.execute(document)
    assert result.errors
    assert [(error.extensions or {}).get("code") for error in result.errors] == [code]


def test_an_error_that_already_has_a_code_keeps_it() -> None:
    error = GraphQLError("5 aliases found. Allowed: 2", extensions={"code": "MINE"})
    tag([error], VALIDATION_FAILED)
    assert error.extensions == {"code": "MINE"}


def test_other_messages_get_the_default_code() -> None:
    assert code_for_message("Cannot query field 'x'", VALIDATION_FAILED) == VALIDATION_FAILED


@pytest.fixture
def small_documents(tmp_path: Path) -> BeaconSchema:
    return build_schema(make_settings(tmp_path, GRAPHQL_MAX_DOCUMENT_BYTES="100"))


# A comment is no token: only the document's size in bytes can refuse it.
LONG_COMMENT = "# " + "x" * 200 + "\n"


async def test_a_document_over_the_byte_limit_is_refused_whatever_its_comments(
    small_documents: BeaconSchema,
) -> None:
    result = await small_documents.execute(LONG_COMMENT + "{ viewer { id } }")
    assert result.data is None
    assert [(error.extensions or {}).get("code") for error in result.errors or []] == [
        "QUERY_TOO_LARGE"
    ]
    assert "at most 100" in (result.errors or [])[0].message


async def test_bytes_not_characters_are_counted(small_documents: BeaconSchema) -> None:
    # 40 characters, 120 bytes in UTF-8
    result = await small_documents.execute("# " + "€" * 40 + "\n{ viewer { id } }")
    assert [(error.extensions or {}).get("code") for error in result.errors or []] == [
        "QUERY_TOO_LARGE"
    ]


async def test_a_subscription_over_the_byte_limit_is_refused_with_one_error(
    small_documents: BeaconSchema,
) -> None:
    results = await small_documents.subscribe(
        LONG_COMMENT + "subscription { deliveryUpdated { taskId } }"
    )
    refused = [result async for result in results]
    assert len(refused) == 1
    assert [(error.extensions or {}).get("code") for error in refused[0].errors or []] == [
        "QUERY_TOO_LARGE"
    ]
