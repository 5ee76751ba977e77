"""The strawberry ASGI view, with Beacon's context and websocket sign-in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from resolvers.context import Context, Services, authenticate
from schema import schema


def _authorization(params: Mapping[str, Any] | None) -> str | None:
    """The `authorization` entry of a connection_init payload, in any key case."""
    for key, value in (params or {}).items():
        if key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class BeaconGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        )
        self.services = services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = Context(
            services=self.services,
            request=request,
            response=response if isinstance(response, Response) else None,
        )
        if isinstance(request, Request):
            context.viewer = await authenticate(
                self.services.db, request.headers.get("authorization")
            )
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        header = context.request.headers.get("authorization")
        authorization = _authorization(context.connection_params) or header
        context.viewer = await authenticate(self.services.db, authorization)
        if context.viewer is None:
            raise ConnectionRejectionError({"message": "a valid API token is required"})
        return await super().on_ws_connect(context)
