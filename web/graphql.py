"""The strawberry ASGI view, with Beacon's context, websocket sign-in and limits.

The limits kept here (docs/adr/0015-request-limits.md): a document's size before it is
parsed (`LimitedSchema`), JSON nested too deeply (400 over HTTP; a protocol error on a
websocket), connection_init deadlines for both websocket protocols, and per token the
websockets open at once and the rate of new ones. The body's size and deadline, and the
rate of HTTP requests, are kept before the request reaches the view (web/request_limits.py,
web/rate_limits.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from typing import Any, NoReturn, cast

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UnsetType

from common.metrics import REQUESTS_LIMITED, WEBSOCKETS_OPEN
from common.settings import Settings
from live.shared_results import SharedResultExecutor, encode_next
from live.token_sockets import TokenSockets
from live.transport import LegacyWS, TransportWS, WebSocketAdapter, refuse_with
from resolvers.context import Context, Services, authenticate
from schema import BeaconSchema, MaskUnexpectedErrors
from schema.operations import Mutation, Query, Subscription
from web.graphiql import graphiql_page
from web.limits import document_too_large, limit_extensions, too_many_subscriptions
from web.rate_limits import RateLimiter, bearer_key, rate_limited_message

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


class LimitedSchema(BeaconSchema):
    """Refuses a document over GRAPHQL_MAX_DOCUMENT_BYTES before strawberry parses it,
    however it came: `execute` serves HTTP, `stream` both websocket protocols."""

    max_document_bytes = 0  # no limit

    async def execute(self, query: str | None, *args: Any, **kwargs: Any) -> ExecutionResult:
        error = document_too_large(query, self.max_document_bytes)
        if error is not None:
            return ExecutionResult(data=None, errors=[error])
        return await super().execute(query, *args, **kwargs)

    async def stream(self, query: str | None, *args: Any, **kwargs: Any) -> Any:
        error = document_too_large(query, self.max_document_bytes)
        if error is not None:
            return _refused(PreExecutionError(data=None, errors=[error]))
        return await super().stream(query, *args, **kwargs)


async def _refused(result: PreExecutionError) -> AsyncGenerator[PreExecutionError, None]:
    yield result


def build_schema(settings: Settings) -> BeaconSchema:
    """The schema as served: `schema.schema` plus the limits and the shared execution
    of live updates (neither changes the SDL)."""
    schema = LimitedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[_MaskUnexpectedErrors, *limit_extensions(settings)],
        execution_context_class=SharedResultExecutor,
    )
    schema.max_document_bytes = settings.graphql_max_document_bytes
    return schema


class TooDeeplyNested(json.JSONDecodeError):
    """JSON nested past what the parser can follow (it raises RecursionError)."""


class WebSocketSlots:
    """The websockets open at once per API token, on this node (0: no cap)."""

    def __init__(self, per_token: int) -> None:
        self.per_token = per_token
        self.open: dict[bytes, int] = {}

    def acquire(self, key: bytes) -> bool:
        count = self.open.get(key, 0)
        if self.per_token and count >= self.per_token:
            return False
        self.open[key] = count + 1
        return True

    def release(self, key: bytes) -> None:
        count = self.open.pop(key, 0) - 1
        if count > 0:
            self.open[key] = count


# Where a websocket's scope keeps the key of the slot it holds.
_SLOT = "beacon.ws_slot"
_TOKEN = "beacon.ws_token"  # noqa: S105 - a scope key, not a secret
TOO_MANY_CONNECTIONS_CODE = 4429


class BeaconGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWS
    graphql_ws_handler_class = LegacyWS
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self,
        services: Services,
        rate_limiter: RateLimiter,
        # Started by the app (web/app.py): it closes a revoked token's websockets.
        token_sockets: TokenSockets,
    ) -> None:
        settings = services.settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
        )
        self.services = services
        self.rate_limiter = rate_limiter
        self.slots = WebSocketSlots(settings.ws_max_connections_per_token)
        self.token_sockets = token_sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        WEBSOCKETS_OPEN.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            WEBSOCKETS_OPEN.dec()
            slot = scope.pop(_SLOT, None)
            if slot is not None:
                self.slots.release(slot)
            signed_in = scope.pop(_TOKEN, None)
            if signed_in is not None:
                self.token_sockets.discard(*signed_in)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError:
            raise TooDeeplyNested("JSON nested too deeply", "", 0) from None

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except TooDeeplyNested as error:
            raise HTTPException(400, "The JSON in the request is nested too deeply.") from error
        except json.JSONDecodeError as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error

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
        websocket = cast(WebSocket, context.request)
        # Counted before the token is looked up, as on HTTP (web/rate_limits.py).
        wait = self.rate_limiter.check_token(authorization)
        if wait:
            self._refuse(websocket, rate_limited_message(wait), "RATE_LIMITED")
        context.viewer = await authenticate(self.services.db, authorization)
        if context.viewer is None:
            raise ConnectionRejectionError({"message": "a valid API token is required"})
        key = bearer_key(authorization)
        if key is not None and _SLOT not in websocket.scope:
            if not self.slots.acquire(key):
                REQUESTS_LIMITED.labels("ws_per_token").inc()
                self._refuse(
                    websocket,
                    f"At most {self.slots.per_token} websockets may be open per API token.",
                    "TOO_MANY_CONNECTIONS",
                )
            websocket.scope[_SLOT] = key
        if context.viewer.token_id is not None and _TOKEN not in websocket.scope:
            # Closed when the token is revoked (live/token_sockets.py).
            websocket.scope[_TOKEN] = (context.viewer.token_id, websocket)
            self.token_sockets.add(context.viewer.token_id, websocket)
        return await super().on_ws_connect(context)

    @staticmethod
    def _refuse(websocket: WebSocket, message: str, code: str) -> NoReturn:
        """Refuse a connection_init: close code 4429 with `message` as the reason
        (graphql-ws first sends it as a connection_error, with `code`)."""
        refuse_with(websocket, TOO_MANY_CONNECTIONS_CODE, message)
        raise ConnectionRejectionError({"message": message, "extensions": {"code": code}})
