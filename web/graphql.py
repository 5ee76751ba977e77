"""The strawberry ASGI view, with Beacon's context and websocket sign-in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from common.metrics import WEBSOCKETS_OPEN
from common.settings import Settings
from resolvers.context import Context, Services, authenticate
from schema import BeaconSchema, MaskUnexpectedErrors
from schema.operations import Mutation, Query, Subscription
from web.graphiql import graphiql_page
from web.limits import limit_extensions, too_many_subscriptions
from web.shared_results import LiveTransportWS, SharedResultExecutor, encode_next

# GraphQL over HTTP: clients that ask for this media type get 4xx for request errors.
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def _authorization(params: Mapping[str, Any] | None) -> str | None:
    """The `authorization` entry of a connection_init payload, in any key case."""
    for key, value in (params or {}).items():
        if key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


def _code_for(error: Mapping[str, Any]) -> str:
    message = str(error.get("message", ""))
    if "path" in error:
        return "INTERNAL_SERVER_ERROR"  # masked by MaskUnexpectedErrors
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    return "GRAPHQL_VALIDATION_FAILED"


# What strawberry says when a connection runs one operation too many.
_SUBSCRIPTION_LIMIT_MESSAGE = "Subscription limit reached"


class _MaskUnexpectedErrors(MaskUnexpectedErrors):
    """As schema.MaskUnexpectedErrors, without the runtime Protocol check strawberry
    makes on every streamed result (slow on Python 3.11; one per subscriber per update)."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


def build_schema(settings: Settings) -> BeaconSchema:
    """The schema as served: `schema.schema` plus the limits and the shared execution
    of live updates (neither changes the SDL)."""
    return BeaconSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[_MaskUnexpectedErrors, *limit_extensions(settings)],
        execution_context_class=SharedResultExecutor,
    )


class BeaconGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LiveTransportWS

    def __init__(self, services: Services) -> None:
        super().__init__(
            build_schema(services.settings),
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            max_subscriptions_per_connection=services.settings.ws_max_subscriptions,
        )
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        WEBSOCKETS_OPEN.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            WEBSOCKETS_OPEN.dec()

    async def render_graphql_ide(self, request: Request) -> Response:
        # Our own page and copies of its scripts, instead of strawberry's CDN-loaded one.
        return graphiql_page()

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, dict):
            shared = encode_next(data)
            if shared is not None:
                return shared
            if data.get("type") == "error":
                data = self._with_limit_code(data)
        return super().encode_json(data)

    def _with_limit_code(self, message: dict[str, Any]) -> dict[str, Any]:
        """Strawberry's subscription-limit error, with an extensions.code."""
        payload = message.get("payload")
        error = payload[0] if isinstance(payload, list) and payload else payload
        if not isinstance(error, dict) or error.get("message") != _SUBSCRIPTION_LIMIT_MESSAGE:
            return message
        limit = too_many_subscriptions(self.max_subscriptions_per_connection or 0)
        return {**message, "payload": [limit] if isinstance(payload, list) else limit}

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

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # create_response() is not given the request; it needs its Accept header.
        sub_response.graphql_request = request  # type: ignore[attr-defined]
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        errors = cast(list[dict[str, Any]], response.get("errors") or [])
        for error in errors:
            error.setdefault("extensions", {}).setdefault("code", _code_for(error))
        # A request error (unparsable or invalid document): nothing was executed.
        if result.data is None and errors and all("path" not in e for e in errors):
            request.state.graphql_request_error = True
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        request: Request | None = getattr(sub_response, "graphql_request", None)
        if request is not None and GRAPHQL_RESPONSE_JSON in request.headers.get("accept", ""):
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
            if getattr(request.state, "graphql_request_error", False):
                response.status_code = 400
        return response

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        header = context.request.headers.get("authorization")
        authorization = _authorization(context.connection_params) or header
        context.viewer = await authenticate(self.services.db, authorization)
        if context.viewer is None:
            raise ConnectionRejectionError({"message": "a valid API token is required"})
        return await super().on_ws_connect(context)
