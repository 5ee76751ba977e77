"""The pixel's short way through the application (web/stack.py): it answers exactly what
the Starlette route answered, records only a genuine GET, and is logged once per hit with
its request id, without its token or client address."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import web.logging
from common.domain import ReadConfidence
from common.tokens import PIXEL, sign
from db.opens import Open
from pixel.confidence import load_rules
from pixel.endpoint import GIF, pixel_route
from pixel.recorder import OpenRecorder
from web.logging import BlockWriter, JsonFormatter
from web.stack import BeaconApp

KEY = b"test-secret-key"
PIXEL_ID = "00112233445566778899aabbccddeeff"
TOKEN = sign(PIXEL_ID, KEY, PIXEL)


class FakeRecorder:
    def __init__(self) -> None:
        self.opens: list[Open] = []

    async def record(self, open_: Open) -> None:
        self.opens.append(open_)


@pytest.fixture
def recorder() -> FakeRecorder:
    return FakeRecorder()


def client_of(recorder: FakeRecorder, *, log_pixel_hits: bool) -> httpx.AsyncClient:
    pixel = pixel_route(cast(OpenRecorder, recorder), KEY, load_rules())
    app = BeaconApp(routes=[pixel, Route("/healthz", lambda _: PlainTextResponse("ok"))])
    app.pixel = pixel
    app.log_pixel_hits = log_pixel_hits
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4321)),
        base_url="http://testserver",
    )


@pytest.fixture
def http(recorder: FakeRecorder) -> httpx.AsyncClient:
    """The stack as configured by default: pixel hits are not logged."""
    return client_of(recorder, log_pixel_hits=False)


@pytest.fixture
def logging_http(recorder: FakeRecorder) -> httpx.AsyncClient:
    """The stack with LOG_PIXEL_HITS on."""
    return client_of(recorder, log_pixel_hits=True)


@contextlib.contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The JSON log as `setup_logging` makes it, alone on the root logger: request lines
    take their direct way."""
    stream = io.StringIO()
    handler = BlockWriter(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        assert web.logging._direct_writer() is handler
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "beacon.request"]


async def test_given_a_genuine_token_when_the_pixel_is_loaded_then_the_gif_is_answered_uncached_and_the_open_recorded(  # noqa: E501
    http: httpx.AsyncClient, recorder: FakeRecorder
) -> None:
    # When a mail client loads the pixel
    response = await http.get(f"/p/{TOKEN}.gif", headers={"User-Agent": "Thunderbird/115.0"})

    # Then it gets the GIF, with the headers the Starlette route gave it
    assert response.status_code == 200
    assert response.content == GIF
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["content-length"] == "43"
    assert response.headers["cache-control"] == "no-store, no-cache, must-revalidate, max-age=0"
    assert (response.headers["pragma"], response.headers["expires"]) == ("no-cache", "0")
    # And one open is recorded, judged a person's
    (open_,) = recorder.opens
    assert open_.pixel_id == PIXEL_ID
    assert open_.confidence is ReadConfidence.HUMAN


@pytest.mark.parametrize(
    ("method", "path"),
    [("HEAD", f"/p/{TOKEN}.gif"), ("GET", f"/p/{TOKEN[:-1]}A.gif"), ("GET", "/p/nonsense.gif")],
)
async def test_given_a_head_or_a_forged_token_when_the_pixel_is_loaded_then_the_gif_is_answered_and_nothing_recorded(  # noqa: E501
    http: httpx.AsyncClient, recorder: FakeRecorder, method: str, path: str
) -> None:
    response = await http.request(method, path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert recorder.opens == []


async def test_given_another_method_or_path_when_requested_then_starlette_answers_it(
    http: httpx.AsyncClient, recorder: FakeRecorder
) -> None:
    assert (await http.post(f"/p/{TOKEN}.gif")).status_code == 405
    assert (await http.get(f"/p/a/{TOKEN}.gif")).status_code == 404
    assert (await http.get("/healthz")).text == "ok"
    assert recorder.opens == []


async def test_given_the_default_settings_when_the_pixel_is_hit_then_only_other_requests_are_logged(
    http: httpx.AsyncClient, recorder: FakeRecorder
) -> None:
    # When the pixel is hit, then another path is requested
    with json_log() as log_lines:
        hit = await http.get(f"/p/{TOKEN}.gif", headers={"X-Request-ID": "trace-6"})
        other = await http.get("/healthz", headers={"X-Request-ID": "trace-6.h"})

    # Then the open is taken, and the pixel's answer carries no request id (nothing
    # logged it), the other one its own
    assert hit.content == GIF
    assert len(recorder.opens) == 1
    assert "x-request-id" not in hit.headers
    assert other.headers["x-request-id"] == "trace-6.h"
    # And only the other request has a line
    assert [(line["request_id"], line["path"]) for line in request_lines(log_lines)] == [
        ("trace-6.h", "/healthz")
    ]


async def test_given_log_pixel_hits_when_a_pixel_hit_is_answered_then_it_is_logged_once_with_its_request_id_and_neither_token_nor_client(  # noqa: E501
    logging_http: httpx.AsyncClient,
) -> None:
    # When two hits come, one with its own request id
    http = logging_http
    with json_log() as log_lines:
        traced = await http.get(f"/p/{TOKEN}.gif", headers={"X-Request-ID": "trace-7.b"})
        fresh = await http.get(f"/p/{TOKEN}.gif")

    # Then each response carries its id, and each hit has one line with it
    assert traced.headers["x-request-id"] == "trace-7.b"
    lines = request_lines(log_lines)
    assert [line["request_id"] for line in lines] == ["trace-7.b", fresh.headers["x-request-id"]]
    for line in lines:
        assert line["ts"].endswith("+00:00")
        assert (line["level"], line["msg"], line["method"], line["status"]) == (
            "info",
            "request",
            "GET",
            200,
        )
        assert (line["path"], line["client"]) == ("/p/{token}.gif", "")
        assert line["duration_ms"] >= 0
    logged = "".join(json.dumps(line) for line in lines)
    assert TOKEN not in logged
    assert "203.0.113.7" not in logged


async def test_given_another_handler_on_the_log_when_the_pixel_is_hit_then_the_line_takes_the_ordinary_way(  # noqa: E501
    logging_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="beacon.request"):
        response = await logging_http.get(f"/p/{TOKEN}.gif", headers={"X-Request-ID": "trace-8"})

    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "beacon.request"]
    assert record.getMessage() == "request"
    assert record.__dict__["path"] == "/p/{token}.gif"
    assert record.__dict__["client"] == ""


@pytest.mark.parametrize("sent", [b"trace-42\n", b"a b", b"x" * 129, b""])
def test_a_request_id_that_is_not_safe_to_repeat_is_replaced(sent: bytes) -> None:
    made = web.logging.request_id_of({"headers": [(b"x-request-id", sent)]})

    assert made.encode() != sent
    assert len(made) == 32


def test_a_safe_request_id_is_kept() -> None:
    assert (
        web.logging.request_id_of({"headers": [(b"x-request-id", b"trace-42.a")]}) == "trace-42.a"
    )
