"""The delivery log as a file: GET /export/deliveries.ndjson and /export/deliveries.csv.

They take the `deliveries` query's filter as query parameters (state, channel, since,
until, address, taskId, readConfidence) and the same `Authorization: Bearer` token. The
answer is streamed: deliveries are read in batches by keyset (db/delivery_log.py), each
written out before the next is read, so an export of any size holds one batch in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from common.domain import Channel, DeliveryState, ReadConfidence
from db import delivery_log as db_log
from domain.text import shown
from resolvers import delivery_log
from resolvers.context import Services, authenticate
from resolvers.errors import bad_input, unauthenticated

BATCH = 2000

# The export's fields, named as the API names them, in the order of `_values`.
COLUMNS = [
    "id", "taskId", "commentId", "recipientId", "channel", "address", "state", "attempts",
    "queuedAt", "sentAt", "failedAt", "deliveredAt", "readAt", "readConfidence", "openCount",
    "errorCode", "errorMessage", "providerMessageId",
]  # fmt: skip
# The columns whose text comes from outside (addresses, providers' and servers' words):
# only these can start like a formula.
_FREE_TEXT = [COLUMNS.index(name) for name in ("address", "errorCode", "errorMessage",
                                                 "providerMessageId")]  # fmt: skip

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection);
# a leading quote makes it text. OWASP's list: = + - @, tab and carriage return.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _iso(at: dt.datetime | None) -> str | None:
    # Rows hold UTC times (db.tables.UtcDateTime).
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _id(value: object) -> str | None:
    return None if value is None else str(value)


def _values(row: db_log.ExportedRow) -> list[Any]:
    """A delivery's fields (a row of db.delivery_log.EXPORTED), as COLUMNS names them."""
    fields = row._tuple()
    (id_, task, comment, recipient, channel, address, state, attempts, queued, sent, failed,
     delivered, read, confidence, opens, code, message, provider) = fields  # fmt: skip
    return [
        str(id_), _id(task), _id(comment), str(recipient),
        channel, address, state, attempts,
        _iso(queued), _iso(sent), _iso(failed), _iso(delivered), _iso(read),
        confidence, opens, code, message, provider,
    ]  # fmt: skip


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _ndjson(rows: Sequence[db_log.ExportedRow]) -> bytes:
    lines = (
        json.dumps(dict(zip(COLUMNS, _values(row), strict=True)), ensure_ascii=False,
                   separators=(",", ":"))
        for row in rows
    )  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def _safe_values(row: db_log.ExportedRow) -> list[Any]:
    values = _values(row)
    for i in _FREE_TEXT:
        values[i] = safe_cell(values[i])
    return values


def _csv(rows: Sequence[db_log.ExportedRow], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(map(_safe_values, rows))
    return out.getvalue().encode()


# --- Query parameters ---

_ENUMS: dict[str, type[Channel | DeliveryState | ReadConfidence]] = {
    "state": DeliveryState,
    "channel": Channel,
    "readConfidence": ReadConfidence,
}
_PARAMETERS = ("state", "channel", "since", "until", "address", "taskId", "readConfidence")


def _enum(name: str, value: str) -> Any:
    kind = _ENUMS[name]
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise bad_input(
            f"'{name}' must be one of {choices}; got '{shown(value)}'.", field=name
        ) from None


def _time(name: str, value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad_input(
            f"'{name}' must be an ISO 8601 time such as 2026-12-03T07:00:00Z; "
            f"got '{shown(value)}'.",
            field=name,
        ) from None


def parse_filter(params: Mapping[str, str], keys: list[str]) -> db_log.DeliveryFilter:
    """The filter from query parameters; BAD_USER_INPUT for an unknown, repeated or bad one."""
    for key in keys:
        if key not in _PARAMETERS:
            raise bad_input(
                f"Unknown parameter '{shown(key, 50)}'; the filter takes "
                + ", ".join(_PARAMETERS)
                + ".",
                field=shown(key, 50),
            )
        if keys.count(key) > 1:
            raise bad_input(f"'{key}' is given more than once.", field=key)
    given = dict(params)
    return delivery_log.log_filter(
        state=_enum("state", given["state"]) if "state" in given else None,
        channel=_enum("channel", given["channel"]) if "channel" in given else None,
        since=_time("since", given["since"]) if "since" in given else None,
        until=_time("until", given["until"]) if "until" in given else None,
        address=given.get("address"),
        task_id=given.get("taskId"),
        read_confidence=(
            _enum("readConfidence", given["readConfidence"]) if "readConfidence" in given else None
        ),
    )


_MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
_STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "PLAN_REQUIRED": 403}


def _error(error: GraphQLError) -> Response:
    """The API's error as JSON, with the HTTP status that says the same."""
    code = str((error.extensions or {}).get("code"))
    body = {"error": {"message": error.message, **(error.extensions or {})}}
    headers = {"WWW-Authenticate": "Bearer"} if code == "UNAUTHENTICATED" else None
    return JSONResponse(body, status_code=_STATUS.get(code, 400), headers=headers)


def export_routes(services: Services) -> list[Route]:
    def exporter(fmt: str) -> Callable[[Request], Awaitable[Response]]:
        async def export(request: Request) -> Response:
            try:
                viewer = await authenticate(services.db, request.headers.get("authorization"))
                if viewer is None:
                    raise unauthenticated()
                keys = [key for key, _ in request.query_params.multi_items()]
                wanted = parse_filter(request.query_params, keys)
                cutoff = await delivery_log.export_cutoff(services, viewer)
            except GraphQLError as error:
                return _error(error)

            async def body() -> AsyncIterator[bytes]:
                first = True
                async for rows in db_log.batches(
                    services.db.read, viewer.account_id, wanted, cutoff=cutoff, size=BATCH
                ):
                    yield _ndjson(rows) if fmt == "ndjson" else _csv(rows, header=first)
                    first = False
                if first and fmt == "csv":
                    yield _csv([], header=True)

            return StreamingResponse(
                body(),
                media_type=_MEDIA_TYPES[fmt],
                headers={
                    "Content-Disposition": f'attachment; filename="deliveries.{fmt}"',
                    "Cache-Control": "no-store",
                },
            )

        return export

    return [
        Route(f"/export/deliveries.{fmt}", exporter(fmt), methods=["GET"]) for fmt in _MEDIA_TYPES
    ]
