"""The per-request (or per-websocket) context: services, the signed-in viewer, loaders."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from broadcaster import Broadcast
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from common.domain import Plan
from common.settings import Settings
from common.time import utcnow
from db import api_tokens as db_api_tokens
from db.accounts import Viewer
from db.engine import Database
from db.records import AccountRecord, DeliveryRow
from domain.text import shown
from live.feed import LiveFeed
from resolvers.errors import bad_input, plan_required, unauthenticated
from resolvers.loaders import Loaders

D = TypeVar("D", bound=DeliveryRow)


@dataclass(frozen=True)
class Services:
    """What the API needs from the running process."""

    db: Database
    broadcast: Broadcast
    settings: Settings
    wake_worker: Callable[[], None]
    # The process's one reader of the delivery event log, for every subscription.
    live: LiveFeed


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | None
    viewer: Viewer | None = None
    # Set by strawberry from the websocket's connection_init payload.
    connection_params: Mapping[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        return self.services.db

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise unauthenticated()
        return self.viewer

    @property
    def loaders(self) -> Loaders:
        viewer = self.require_viewer()
        if self._loaders is None:
            self._loaders = Loaders(self.db, viewer.account_id, self.history_cutoff)
        return self._loaders

    def reset_loaders(self) -> None:
        """Forget cached rows: a subscription's next event must see fresh data."""
        self._loaders = None

    async def account(self) -> AccountRecord:
        """The viewer's account, read once per request (or per subscription event)."""
        viewer = self.require_viewer()
        account = await self.loaders.account.load(viewer.account_id)
        assert account is not None, "a token's account is never deleted while in use"
        return account

    async def tracking_allowed(self) -> bool:
        return Plan((await self.account()).plan).tracks_delivery

    async def require_tracking(self) -> None:
        if not await self.tracking_allowed():
            raise plan_required()

    async def history_cutoff(self) -> dt.datetime:
        """Deliveries of notifications older than this are not shown on this plan."""
        return history_cutoff_of(self.services.settings, Plan((await self.account()).plan))

    async def visible(self, rows: Sequence[D]) -> list[D]:
        """The rows (deliveries with `notified_at`) inside the plan's history window."""
        cutoff = await self.history_cutoff()
        return [row for row in rows if row.notified_at >= cutoff]


Info = StrawberryInfo[Context, None]


def history_cutoff_of(settings: Settings, plan: Plan) -> dt.datetime:
    """The oldest notification time a plan shows; PLAN_REQUIRED for a plan without
    tracking. Shared by the GraphQL context and the export, which has none."""
    days = settings.history_days(plan)
    if days is None:
        raise plan_required()
    return utcnow() - dt.timedelta(days=days)


def parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise bad_input(f"'{shown(value)}' is not a valid {what} id.", field="id") from None


def bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(db: Database, authorization: str | None) -> Viewer | None:
    token = bearer_token(authorization)
    if token is None:
        return None
    async with db.read() as conn:
        found = await db_api_tokens.viewer_for_token(conn, token)
    if found is None:
        return None
    viewer, due = found
    if due and viewer.token_id is not None:
        async with db.write() as conn:
            await db_api_tokens.touch(conn, viewer.token_id, utcnow())
    return viewer
