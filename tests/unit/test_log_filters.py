"""What the log filters take out of lines: secrets in URLs, SMTP conversations at INFO."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from web.logging import DebugOnly, RedactSecrets, redact_query_secrets


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:5 - "WebSocket /graphql?token=bcn_abc" [accepted]',
            '127.0.0.1:5 - "WebSocket /graphql?token=[redacted]" [accepted]',
        ),
        ("/x?page=2&access_token=abc&b=1", "/x?page=2&access_token=[redacted]&b=1"),
        (
            "/callbacks/whatsapp?hub.verify_token=v&hub.challenge=7",
            "/callbacks/whatsapp?hub.verify_token=[redacted]&hub.challenge=7",
        ),
        ("GET /?api_key=k;x=1", "GET /?api_key=[redacted];x=1"),
        ("/?Secret=s&PASSWORD=p", "/?Secret=[redacted]&PASSWORD=[redacted]"),
        ("nothing to hide here", "nothing to hide here"),
        ("/graphql?query={viewer{id}}", "/graphql?query={viewer{id}}"),
    ],
)
def test_secret_query_parameters_are_redacted(line: str, expected: str) -> None:
    assert redact_query_secrets(line) == expected


@pytest.fixture
def filtered() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.filtered")
    redact, debug_only = RedactSecrets(), DebugOnly()
    logger.addFilter(redact)
    logger.addFilter(debug_only)
    try:
        yield logger
    finally:
        logger.removeFilter(redact)
        logger.removeFilter(debug_only)


def test_a_line_with_a_token_in_its_arguments_is_written_redacted(
    filtered: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    filtered.warning('%s - "WebSocket %s" 403', "127.0.0.1:5", "/graphql?token=bcn_abc")
    assert [record.getMessage() for record in caplog.records] == [
        '127.0.0.1:5 - "WebSocket /graphql?token=[redacted]" 403'
    ]


def test_info_lines_of_a_debug_only_logger_are_written_only_at_debug_level(
    filtered: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    filtered.info("recip: ann@example.test")
    filtered.warning("too many bogus commands")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "too many bogus commands")
    ]

    caplog.clear()
    caplog.set_level(logging.DEBUG)
    filtered.info("recip: ann@example.test")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "recip: ann@example.test")
    ]
