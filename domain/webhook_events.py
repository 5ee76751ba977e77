"""Status webhooks' rules: which status change makes which event, what an event says,
and how it is signed (the Standard Webhooks scheme, https://www.standardwebhooks.com).

The database writes the events (a trigger, migration 0009) with the same `event_type`
rule; tests/integration/test_webhook_events.py checks that the two agree.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from common.domain import DeliveryState


class WebhookEventType(enum.StrEnum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    FAILED = "FAILED"
    READ = "READ"
    # A sent delivery failed later: a bounce, or a provider's "failed" report.
    BOUNCED = "BOUNCED"


def event_type(old: DeliveryState | None, new: DeliveryState) -> WebhookEventType:
    """The event a status change makes (`old` is None for a new delivery)."""
    if old is DeliveryState.SENT and new is DeliveryState.FAILED:
        return WebhookEventType.BOUNCED
    return WebhookEventType(new.value)


def event_id(row_id: int) -> str:
    """The `webhook-id` receivers deduplicate by: the same on every retry and replay."""
    return f"evt_{row_id}"


@dataclass(frozen=True)
class EventFacts:
    """What an event row holds, with the delivery's fixed facts."""

    id: int
    type: WebhookEventType
    occurred_at: dt.datetime
    delivery_id: uuid.UUID
    task_id: uuid.UUID | None
    comment_id: uuid.UUID | None
    recipient_id: uuid.UUID | None
    channel: str | None  # None, as task_id, once the delivery is purged
    address: str | None
    old_state: str | None
    new_state: str
    error_code: str | None
    error_message: str | None
    read_confidence: str | None


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def body(event: EventFacts) -> bytes:
    """The JSON body: Standard Webhooks' envelope (`type`, `timestamp`, `data`). Built from
    stored facts only, so a retry or replay sends the very same bytes."""
    error = (
        None
        if event.error_code is None
        else {"code": event.error_code, "message": event.error_message}
    )
    payload = {
        "id": event_id(event.id),
        "type": f"delivery.{event.type.value.lower()}",
        "timestamp": _iso(event.occurred_at),
        "data": {
            "deliveryId": str(event.delivery_id),
            "taskId": None if event.task_id is None else str(event.task_id),
            "commentId": None if event.comment_id is None else str(event.comment_id),
            "recipientId": None if event.recipient_id is None else str(event.recipient_id),
            "channel": event.channel,
            "address": event.address,
            "previousState": event.old_state,
            "state": event.new_state,
            "error": error,
            "readConfidence": event.read_confidence,
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- Signing ---

# The prefix Standard Webhooks libraries strip from a secret (not a secret itself).
SECRET_PREFIX = "whsec_"  # noqa: S105


def new_secret() -> str:
    """A signing secret as Standard Webhooks libraries take it: whsec_ + base64 of 24
    random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secrets_: Iterable[str], message_id: str, timestamp: int, data: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` over
    `id.timestamp.body`, once per secret (space-separated; during a rotation the old
    and the new secret both sign)."""
    signed = f"{message_id}.{timestamp}.".encode() + data
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def headers(
    secrets_: Sequence[str], message_id: str, timestamp: int, data: bytes
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_, message_id, timestamp, data),
    }
