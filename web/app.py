"""The ASGI application: GraphQL, the pixel, the mailbox, health; and, in the embedded
default, the mail catcher and a worker running in the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from broadcast import create_broadcast
from common.settings import Settings
from db.engine import Database
from inbound.bounce_listener import BounceListener
from live.feed import LiveFeed
from live.token_sockets import TokenSockets
from mailcatcher.routes import mailbox_routes
from mailcatcher.server import MailCatcher
from mailcatcher.store import MailStore
from pixel.confidence import load_rules
from pixel.endpoint import pixel_route
from pixel.recorder import OpenRecorder
from resolvers.context import Services
from sending.worker import Worker
from web.callbacks import email_bounce_route, sms_route, whatsapp_routes
from web.dashboard import dashboard_routes
from web.export import export_routes
from web.graphql import BeaconGraphQL
from web.health import health_routes
from web.metrics import metrics_route
from web.rate_limits import RateLimited, RateLimiter
from web.stack import BeaconApp

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    db = Database(settings.database_url)
    broadcast = create_broadcast(settings.broadcast_url, prefix=settings.broadcast_prefix)
    live = LiveFeed(
        db,
        broadcast,
        poll_seconds=settings.live_poll_seconds,
        gap_seconds=settings.live_gap_seconds,
    )
    worker = Worker(db, broadcast, settings) if settings.embedded_worker else None
    mail_store = MailStore() if settings.embedded else None
    services = Services(
        db=db,
        broadcast=broadcast,
        settings=settings,
        wake_worker=worker.wake if worker else lambda: None,
        live=live,
    )
    # Per node: with several API nodes a client gets the limits on each.
    rate_limiter = RateLimiter(
        per_token_per_minute=settings.rate_limit_per_minute,
        per_ip_per_minute=settings.rate_limit_per_ip_per_minute,
    )
    token_sockets = TokenSockets(db, broadcast)
    graphql = RateLimited(BeaconGraphQL(services, rate_limiter, token_sockets), rate_limiter)
    recorder = OpenRecorder(
        db,
        broadcast,
        capacity=settings.pixel_buffer_size,
        commits_in_flight=settings.pixel_commits_in_flight,
        commit_window=settings.pixel_commit_window_seconds,
    )

    pixel = pixel_route(recorder, settings.secret_key, load_rules(settings.open_rules_path))
    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        pixel,
        email_bounce_route(db, broadcast, settings.secret_key, settings.bounce_webhook_secret),
        *whatsapp_routes(db, broadcast),
        sms_route(db, broadcast, settings.public_base_url),
        *health_routes(db),
        metrics_route(db),
        *dashboard_routes(),
        *export_routes(services),
    ]
    if mail_store is not None:
        routes.extend(mailbox_routes(mail_store))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await broadcast.connect()
            stack.push_async_callback(broadcast.disconnect)
            stack.push_async_callback(live.aclose)
            stack.push_async_callback(db.dispose)
            stack.push_async_callback(recorder.aclose)
            await _start(stack, token_sockets.run, "token-revocations")
            if mail_store is not None:
                catcher = MailCatcher(
                    mail_store, host=settings.mailcatcher_host, port=settings.mailcatcher_port
                )
                await catcher.start()
                stack.push_async_callback(catcher.stop)
            if settings.bounce_smtp_port is not None:
                bounce_listener = BounceListener(
                    db,
                    broadcast,
                    settings.secret_key,
                    host=settings.bounce_smtp_host,
                    port=settings.bounce_smtp_port,
                )
                await bounce_listener.start()
                stack.push_async_callback(bounce_listener.stop)
            if worker is not None:
                task = asyncio.create_task(worker.run(), name="embedded-worker")
                stack.push_async_callback(_stop_worker, worker, task)
            yield

    app = BeaconApp(routes=routes, lifespan=lifespan)
    app.pixel = pixel
    app.body_caps = {"/graphql": settings.graphql_max_body_bytes}
    app.body_timeout = settings.body_timeout_seconds
    app.log_pixel_hits = settings.log_pixel_hits
    app.state.services = services
    return app


async def _start(
    stack: contextlib.AsyncExitStack,
    run: Callable[[asyncio.Future[None]], Coroutine[Any, Any, None]],
    name: str,
) -> None:
    """Run a listener for the app's lifetime, once it is subscribed."""
    subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(subscribed), name=name)
    stack.push_async_callback(_cancel, task)
    await subscribed


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_worker(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    try:
        await asyncio.wait_for(task, timeout=30)
    except TimeoutError:
        log.warning("the embedded worker did not stop in time; its leases will expire")
