"""Idempotency keys in the API: where a mutation's key comes from, and the two calls a
mutation makes inside its write transaction (ADR 0021).

    key = request_key(info, "createTask", given_key, {...the input...})
    async with info.context.db.write() as conn:
        if (first := await replayed(conn, key, now)) is not None:
            return first          # the key's first result; nothing is written or sent
        ... the mutation's writes ...
        await remember(conn, key, new_id)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from db import idempotency as db_idempotency
from domain.idempotency import IDEMPOTENT_MUTATIONS, KEY_LIFETIME, input_hash, key_problem
from resolvers.context import Info
from resolvers.errors import bad_input, idempotency_key_reused

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class RequestKey:
    """A mutation's key, with what identifies its input."""

    account_id: uuid.UUID
    key: str
    mutation: str
    input_hash: str


def request_key(
    info: Info, mutation: str, given: str | None, arguments: Mapping[str, object]
) -> RequestKey | None:
    """The key of this mutation (the `idempotencyKey` input, or else the HTTP header),
    checked; None when the client sent none. `arguments` are the mutation's input as it
    will be written, so that a retry spelled differently still counts as the same."""
    header = _header(info)
    if header is not None:
        # A header cannot say which of several mutations it is for.
        count = _idempotent_fields(info, info.operation.selection_set)
        if count > 1:
            raise bad_input(
                f"An {HEADER} header applies to one mutation, and this request has {count} "
                f"of {', '.join(sorted(IDEMPOTENT_MUTATIONS))}: send them in separate "
                "requests, or give each its own 'idempotencyKey' input.",
                field=HEADER,
            )
        if given is not None and given != header:
            raise bad_input(
                f"The {HEADER} header and 'idempotencyKey' differ; send one of them.",
                field="idempotencyKey",
            )
    key = given if given is not None else header
    if key is None:
        return None
    problem = key_problem(key)
    if problem is not None:
        field = "idempotencyKey" if given is not None else HEADER
        raise bad_input(f"The idempotency key {problem}.", field=field)
    viewer = info.context.require_viewer()
    return RequestKey(viewer.account_id, key, mutation, input_hash(mutation, arguments))


async def replayed(
    conn: AsyncConnection, key: RequestKey | None, now: dt.datetime
) -> uuid.UUID | None:
    """The id the key's first use made, when this is a retry; None when this request
    is the key's first use (or has no key), and goes on to do the mutation.
    IDEMPOTENCY_KEY_REUSED when the key was first used for something else."""
    if key is None:
        return None
    used = await db_idempotency.claim(
        conn,
        account_id=key.account_id,
        key=key.key,
        mutation=key.mutation,
        input_hash=key.input_hash,
        now=now,
        expired_before=now - KEY_LIFETIME,
    )
    if used is None:
        return None
    if (used.mutation, used.input_hash) != (key.mutation, key.input_hash):
        raise idempotency_key_reused(used.mutation, used.created_at)
    # Committed with the mutation's writes, so never missing once the row is seen.
    assert used.result_id is not None
    return used.result_id


async def remember(conn: AsyncConnection, key: RequestKey | None, result_id: uuid.UUID) -> None:
    """Record what the key's first use made, in the same transaction."""
    if key is not None:
        await db_idempotency.record_result(
            conn, account_id=key.account_id, key=key.key, result_id=result_id
        )


def _header(info: Info) -> str | None:
    # Over a websocket a handshake header would apply to every operation: HTTP only.
    request = info.context.request
    if not isinstance(request, Request):
        return None
    return request.headers.get(HEADER)


def _idempotent_fields(info: Info, selection_set: SelectionSetNode) -> int:
    """How many root fields of the operation are mutations that take a key (those under
    @skip or @include count too: the header is checked before anything runs)."""
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            count += selection.name.value in IDEMPOTENT_MUTATIONS
        elif isinstance(selection, InlineFragmentNode):
            count += _idempotent_fields(info, selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = info._raw_info.fragments[selection.name.value]
            count += _idempotent_fields(info, fragment.selection_set)
    return count
