"""The GraphQL schema. `python -m schema` prints it in SDL (compared with schema.graphql in CI)."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaskErrors

from schema.operations import Mutation, Query, Subscription


def _is_unexpected(error: Exception) -> bool:
    """Hide the text of errors we did not raise on purpose: it may hold internals."""
    from graphql import GraphQLError

    if not isinstance(error, GraphQLError):
        return True
    if error.extensions and "code" in error.extensions:
        return False
    # Errors from parsing and validating the document carry no original error.
    return error.original_error is not None


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[MaskUnexpectedErrors],
)

__all__ = ["schema"]
