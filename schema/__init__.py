"""The GraphQL schema. `python -m schema` prints it in SDL (compared with schema.graphql in CI)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from domain.errors import InvalidInput
from resolvers.errors import answer_invalid_input
from schema.operations import Mutation, Query, Subscription


def _is_unexpected(error: Exception) -> bool:
    """Errors we did not raise on purpose: their text may hold internals."""
    if not isinstance(error, GraphQLError):
        return True
    if error.extensions and "code" in error.extensions:
        return False
    if isinstance(error.original_error, InvalidInput):
        return False
    # Errors from parsing and validating the document carry no original error.
    return error.original_error is not None


class MaskUnexpectedErrors(MaskErrors):
    """Answers a rule's InvalidInput as BAD_USER_INPUT, and hides what we did not
    raise on purpose."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return super()._process_errors([answer_invalid_input(error) for error in errors])


class BeaconSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what went wrong on our side: a client's bad input, a missing token
        or an invalid document is the client's answer, not an incident."""
        super().process_errors(
            [error for error in errors if _is_unexpected(error)], execution_context
        )


schema = BeaconSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[MaskUnexpectedErrors],
)

__all__ = ["schema"]
