"""The baseline of `benchmarks.fanout_latency`: a naive strawberry subscription over
broadcaster's memory backend, as a first version would write it.

A pixel hit checks the HMAC and publishes the delivery's new state (no database at
all); every subscriber receives the message from its own broadcaster queue, builds its
own objects, and strawberry executes and serialises its selection once per subscriber.
The subscription serves the same selection as Beacon's `deliveryUpdated`.

    SECRET_KEY=... python -m uvicorn benchmarks.naive_fanout_app:app
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

import strawberry
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL

from common.tokens import PIXEL, verify
from pixel.endpoint import GIF

KEY = os.environ.get("SECRET_KEY", "benchmark-secret-key").encode()
CHANNEL = "deliveries"
broadcast = Broadcast("memory://")


@strawberry.type
class Delivery:
    id: strawberry.ID
    address: str
    state: str
    read_at: dt.datetime | None
    open_count: int


@strawberry.type
class DeliveryStatus:
    state: str
    total: int
    read: int


@strawberry.type
class DeliveryUpdate:
    cursor: str
    task_id: strawberry.ID
    comment_id: strawberry.ID | None
    delivery: Delivery
    status: DeliveryStatus


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def delivery_updated(
        self, task_id: strawberry.ID | None = None
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        async with broadcast.subscribe(CHANNEL) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                if event is None:
                    return
                data = json.loads(event.message)
                if task_id is not None and data["task_id"] != task_id:
                    continue
                yield DeliveryUpdate(
                    cursor=str(data["seq"]),
                    task_id=strawberry.ID(data["task_id"]),
                    comment_id=strawberry.ID(data["comment_id"]),
                    delivery=Delivery(
                        id=strawberry.ID(data["id"]),
                        address=data["address"],
                        state="READ",
                        read_at=dt.datetime.fromisoformat(data["read_at"]),
                        open_count=1,
                    ),
                    status=DeliveryStatus(state="READ", total=1, read=1),
                )


schema = strawberry.Schema(query=Query, subscription=Subscription)
TASK_ID = os.environ.get("NAIVE_TASK_ID", str(uuid.UUID(int=1)))
sequence = 0


async def pixel(request: Request) -> Response:
    global sequence
    pixel_id = verify(request.path_params["token"], KEY, PIXEL)
    if pixel_id is not None:
        sequence += 1
        message = {
            "seq": sequence,
            "id": str(uuid.UUID(pixel_id)),
            "task_id": TASK_ID,
            "comment_id": str(uuid.UUID(int=2)),
            "address": "person@bench.test",
            "read_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        await broadcast.publish(CHANNEL, json.dumps(message))
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


async def healthz(_: Request) -> Response:
    return Response("ok")


@contextlib.asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    async with broadcast:
        yield


graphql = GraphQL(schema)
app = Starlette(
    routes=[
        Route("/p/{token}.gif", pixel),
        Route("/healthz", healthz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ],
    lifespan=lifespan,
)
