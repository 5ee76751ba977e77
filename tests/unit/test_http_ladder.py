"""The one HTTP status -> outcome ladder (channels/http.py) that every HTTP channel hands
its provider's refusals to; the contract test runs it through each real channel."""

from __future__ import annotations

import pytest

from channels.base import Outcome
from channels.http import Refusal, refusal_result


def outcome(refusal: Refusal) -> tuple[Outcome, str, float | None]:
    result = refusal_result("+15550001", refusal, host="api.example.test")
    return result.outcome, result.code, result.retry_after


def test_refused_credentials_are_permanent_whatever_the_status() -> None:
    result = refusal_result(
        "+15550001",
        Refusal(503, "190", "token expired", credentials_refused="X refused the token"),
        host="api.example.test",
    )
    assert (result.outcome, result.code) == (Outcome.PERMANENT, "UNAUTHORIZED")
    assert result.message == "X refused the token: token expired"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 599])
def test_408_429_and_5xx_are_transient_with_the_wait_asked_for(status: int) -> None:
    assert outcome(Refusal(status, "E1", "busy", retry_after=7.0)) == (
        Outcome.TRANSIENT,
        "E1",
        7.0,
    )


def test_a_throttling_code_is_transient_whatever_the_status() -> None:
    assert outcome(Refusal(400, "130429", "too fast", throttled=True))[0] is Outcome.TRANSIENT


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
def test_other_4xx_are_permanent_with_the_providers_code(status: int) -> None:
    assert outcome(Refusal(status, "131026", "undeliverable", retry_after=3.0)) == (
        Outcome.PERMANENT,
        "131026",
        None,
    )


@pytest.mark.parametrize("status", [200, 201, 302, 304])
def test_an_answer_without_a_receipt_is_an_invalid_response_worth_retrying(status: int) -> None:
    result = refusal_result("a", Refusal(status, str(status), "<html>"), host="api.example.test")
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "INVALID_RESPONSE")
    assert result.message == "unexpected answer from api.example.test: <html>"
