"""Limits on what one GraphQL document may ask for, and the codes of their errors.

The document's size in bytes (GRAPHQL_MAX_DOCUMENT_BYTES, `document_too_large`) is
checked first, before strawberry sees the document (web/graphql.py, `LimitedSchema`):
the token limit counts neither comments nor whitespace, and lexing a 10 MB comment
costs seconds of CPU. It holds for every way a document comes (POST, GET, both
websocket protocols), with the code QUERY_TOO_LARGE.

Depth, tokens and aliases are strawberry's own limiters. Their errors carry no
`extensions.code`, and over a websocket strawberry sends errors as they are, so
`ErrorCodes` gives every parse and validation error its code where it is made: a
specific one for each limit, GRAPHQL_PARSE_FAILED or GRAPHQL_VALIDATION_FAILED for the
rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from common.settings import Settings

TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_TOKENS = "QUERY_TOO_LARGE"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

# What strawberry's limiters (and graphql-core's parser, for tokens) say;
# tests/unit/test_limits.py pins these against the installed versions.
_LIMIT_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"exceeds maximum operation depth of \d+$"), TOO_DEEP),
    (re.compile(r"Document contains more than \d+ tokens"), TOO_MANY_TOKENS),
    (re.compile(r"^\d+ aliases found\. Allowed: \d+$"), TOO_MANY_ALIASES),
]


def code_for_message(message: str, default: str) -> str:
    for pattern, code in _LIMIT_MESSAGES:
        if pattern.search(message):
            return code
    return default


def tag(errors: list[GraphQLError] | None, default: str) -> None:
    for error in errors or ():
        extensions = error.extensions if error.extensions is not None else {}
        if "code" not in extensions:
            error.extensions = {**extensions, "code": code_for_message(error.message, default)}


class ErrorCodes(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        tag(self.execution_context.pre_execution_errors, PARSE_FAILED)

    def on_validate(self) -> Iterator[None]:
        yield
        tag(self.execution_context.pre_execution_errors, VALIDATION_FAILED)


def document_too_large(document: str | None, max_bytes: int) -> GraphQLError | None:
    """The error for a document longer than `max_bytes` in UTF-8 (comments and
    whitespace included), or None."""
    # A character is at most 4 bytes in UTF-8: most documents need no encoding.
    if document is None or len(document) * 4 <= max_bytes:
        return None
    size = len(document.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return None
    return GraphQLError(
        f"The document is {size} bytes long; at most {max_bytes} are allowed.",
        extensions={"code": TOO_MANY_TOKENS},
    )


def limit_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Factories of the limiting extensions, with ErrorCodes last (it must see their
    errors)."""
    return [
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        ErrorCodes,
    ]


def too_many_subscriptions(limit: int) -> dict[str, object]:
    """The error a websocket gets for one subscription too many (graphql-transport-ws
    sends a list of these, graphql-ws one)."""
    return {
        "message": f"At most {limit} operations may run on one connection.",
        "extensions": {"code": TOO_MANY_SUBSCRIPTIONS},
    }
