"""Status webhooks over the API: endpoints (create, list, update, disable, delete, rotate
the secret), each endpoint's attempt log, and replays.

Every resolver that manages endpoints is here, so that one role check (OWNER/ADMIN, issue
14) can guard them all in one place: `_manager`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from common.domain import Channel
from common.time import utcnow
from db import webhook_endpoints as db_endpoints
from db import webhook_events as db_events
from db.accounts import Viewer
from db.records import WebhookAttemptRecord, WebhookEndpointRecord
from domain.text import one_line, shown
from domain.webhook_events import WebhookEventType, new_secret
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, not_found
from resolvers.roles import require_manager

MAX_URL = 2000
MAX_PAGE = 100


async def _manager(info: Info) -> Viewer:
    """Who may see and manage endpoints: an OWNER or ADMIN (endpoints are account
    settings, and attempts hold the receivers' answers) of an account that tracks
    deliveries (the events are tracking data)."""
    viewer = require_manager(info, "Managing webhook endpoints")
    await info.context.require_tracking()
    return viewer


def _url(value: str) -> str:
    url = one_line(value, "url").strip()
    if not url or len(url) > MAX_URL:
        raise bad_input(f"'url' must be 1 to {MAX_URL} characters.", field="url")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise bad_input(f"'{shown(url)}' is not a valid URL.", field="url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise bad_input("'url' must be an http:// or https:// URL with a host.", field="url")
    return url


def _types(events: Sequence[WebhookEventType]) -> list[str]:
    if not events:
        raise bad_input("'events' needs at least one event type.", field="events")
    return [t.value for t in WebhookEventType if t in set(events)]


def _channels(channels: Sequence[Channel]) -> list[str]:
    return [c.value for c in Channel if c in set(channels)]


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpointRecord
    secret: str


async def create_endpoint(
    info: Info, url: str, events: Sequence[WebhookEventType], channels: Sequence[Channel]
) -> EndpointWithSecret:
    viewer = await _manager(info)
    secret = new_secret()
    async with info.context.db.write() as conn:
        row = await db_endpoints.create_endpoint(
            conn,
            account_id=viewer.account_id,
            url=_url(url),
            event_types=_types(events),
            channels=_channels(channels),
            secret=secret,
            now=utcnow(),
        )
    return EndpointWithSecret(row, secret)


async def endpoints(info: Info) -> list[WebhookEndpointRecord]:
    viewer = await _manager(info)
    async with info.context.db.read() as conn:
        return await db_endpoints.list_endpoints(conn, viewer.account_id)


async def update_endpoint(
    info: Info, endpoint_id: str, given: dict[str, Any]
) -> WebhookEndpointRecord:
    """Only the fields given change; `enabled: true` enables a disabled endpoint again
    (what is still pending is sent), `enabled: false` disables it."""
    viewer = await _manager(info)
    parsed = parse_id(endpoint_id, "webhook endpoint")
    values: dict[str, Any] = {}
    for name in ("url", "events", "channels", "enabled"):
        if name in given and given[name] is None:
            raise bad_input(f"'{name}' cannot be null.", field=name)
    if "url" in given:
        values["url"] = _url(given["url"])
    if "events" in given:
        values["event_types"] = _types(given["events"])
    if "channels" in given:
        values["channels"] = _channels(given["channels"])
    enabled = given.get("enabled")
    if enabled is True:
        # Enabled again: its failure streak starts afresh (and what is pending is due).
        values.update(disabled_at=None, disabled_reason=None, failing_since=None)
    now = utcnow()
    async with info.context.db.write() as conn:
        # None when the account has no such endpoint (nothing was updated).
        row = await db_endpoints.update_endpoint(conn, viewer.account_id, parsed, values, now)
        if row is None:
            raise not_found("webhook endpoint")
        if enabled is True:
            await db_endpoints.ensure_job(conn, parsed, now)
        elif enabled is False:
            await db_endpoints.disable(conn, parsed, "disabled by a user", now)
            row = await db_endpoints.get_endpoint(conn, viewer.account_id, parsed)
    assert row is not None
    if enabled is True:
        info.context.services.wake_worker()
    return row


async def disable_endpoint(info: Info, endpoint_id: str) -> WebhookEndpointRecord:
    return await update_endpoint(info, endpoint_id, {"enabled": False})


async def delete_endpoint(info: Info, endpoint_id: str) -> bool:
    viewer = await _manager(info)
    parsed = parse_id(endpoint_id, "webhook endpoint")
    async with info.context.db.write() as conn:
        if not await db_endpoints.delete_endpoint(conn, viewer.account_id, parsed):
            raise not_found("webhook endpoint")
    return True


async def rotate_secret(info: Info, endpoint_id: str) -> EndpointWithSecret:
    viewer = await _manager(info)
    parsed = parse_id(endpoint_id, "webhook endpoint")
    secret = new_secret()
    async with info.context.db.write() as conn:
        row = await db_endpoints.rotate_secret(conn, viewer.account_id, parsed, secret, utcnow())
    if row is None:
        raise not_found("webhook endpoint")
    return EndpointWithSecret(row, secret)


async def _endpoint(info: Info, endpoint_id: str) -> tuple[Viewer, uuid.UUID]:
    viewer = await _manager(info)
    parsed = parse_id(endpoint_id, "webhook endpoint")
    async with info.context.db.read() as conn:
        if await db_endpoints.get_endpoint(conn, viewer.account_id, parsed) is None:
            raise not_found("webhook endpoint")
    return viewer, parsed


def event_number(value: str, field: str) -> int:
    """An event's id ("evt_123") as its row id."""
    number = value.strip().removeprefix("evt_")
    if not number.isdigit():
        raise bad_input(f"'{shown(value)}' is not a webhook event id (evt_<n>).", field=field)
    return int(number)


@dataclass(frozen=True)
class AttemptsPage:
    rows: list[WebhookAttemptRecord]
    has_next: bool


async def attempts(
    info: Info, endpoint_id: str, first: int | None, after: str | None, failed_only: bool
) -> AttemptsPage:
    """An endpoint's attempts, newest first; `after` is a cursor from a previous page."""
    _, parsed = await _endpoint(info, endpoint_id)
    limit = MAX_PAGE if first is None else first
    if not 0 <= limit <= MAX_PAGE:
        raise bad_input(f"'first' must be 0 to {MAX_PAGE}.", field="first")
    before: int | None = None
    if after is not None:
        if not after.isdigit():
            raise bad_input(f"'{shown(after)}' is not a cursor of this list.", field="after")
        before = int(after)
    async with info.context.db.read() as conn:
        rows = await db_events.attempts_page(
            conn, parsed, before=before, limit=limit + 1, failed_only=failed_only
        )
    return AttemptsPage(rows[:limit], len(rows) > limit)


async def replay(info: Info, endpoint_id: str, since: dt.datetime | None, after: str | None) -> int:
    """Send the endpoint's events since a time, or after an event id, again, in order and
    under their own ids; returns how many."""
    if (since is None) == (after is None):
        raise bad_input("Give exactly one of 'since' and 'after'.", field="since")
    _, parsed = await _endpoint(info, endpoint_id)
    after_id = None if after is None else event_number(after, "after")
    now = utcnow()
    async with info.context.db.write() as conn:
        count = await db_events.replay(conn, parsed, since=since, after=after_id, now=now)
        if count:
            await db_endpoints.ensure_job(conn, parsed, now)
    if count:
        info.context.services.wake_worker()
    return count
