"""Page cursors of keyset pagination (tasks, comments): a row's (created_at, id),
opaque to clients. db/ decodes them in its queries, schema/ encodes them on edges."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid


class InvalidCursor(ValueError):
    pass


def encode_cursor(created_at: dt.datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id.hex}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        created_at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        parsed = dt.datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("the cursor is not one this server gave out") from error
