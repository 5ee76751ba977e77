"""The token buckets behind /graphql's rate limits, and their defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.builders import make_settings
from web.rate_limits import TokenBuckets, bearer_key, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_may_burst_its_limit_then_waits_for_the_bucket_to_refill() -> None:
    clock = Clock()
    buckets = TokenBuckets(60, clock=clock)  # one a second, 60 at once

    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    wait = buckets.take("a")
    assert wait == pytest.approx(1.0)
    assert retry_after(wait) == 1

    clock.now += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0.0


def test_keys_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(2, clock=Clock())
    assert [buckets.take("a") for _ in range(3)][-1] > 0
    assert buckets.take("b") == 0.0


def test_a_refused_request_does_not_make_the_wait_longer() -> None:
    clock = Clock()
    buckets = TokenBuckets(6, clock=clock)  # one every 10 s
    for _ in range(6):
        buckets.take("a")
    first = buckets.take("a")
    assert [buckets.take("a") for _ in range(5)] == [first] * 5
    assert retry_after(first) == 10


def test_buckets_that_refilled_are_dropped_and_there_are_never_more_than_max_keys() -> None:
    clock = Clock()
    buckets = TokenBuckets(60, max_keys=100, clock=clock)
    for n in range(1000):
        buckets.take(n)
        assert len(buckets.buckets) <= 100
    # A minute later every bucket is full again: the next sweep forgets them all
    clock.now += 61
    buckets.take("new")
    assert list(buckets.buckets) == ["new"]


def test_a_bearer_key_is_a_short_hash_of_the_token_in_any_case_of_the_scheme() -> None:
    key = bearer_key("Bearer bcn_abc")
    assert key is not None
    assert len(key) == 16
    assert b"bcn_abc" not in key
    assert bearer_key("bearer  bcn_abc ") == key
    assert bearer_key("Bearer bcn_other") != key
    assert bearer_key(None) is None
    assert bearer_key("Basic dXNlcjpwYXNz") is None
    assert bearer_key("Bearer ") is None


def test_rate_limits_are_off_in_embedded_mode_and_on_otherwise(tmp_path: Path) -> None:
    embedded = make_settings(tmp_path)
    assert embedded.embedded
    assert (embedded.rate_limit_per_minute, embedded.rate_limit_per_ip_per_minute) == (0, 0)

    shared = make_settings(tmp_path, SMTP_URL="smtp://relay.example.test")
    assert shared.rate_limit_per_minute == 1200
    assert shared.rate_limit_per_ip_per_minute == 3000

    chosen = make_settings(tmp_path, RATE_LIMIT_PER_MINUTE="5", RATE_LIMIT_PER_IP_PER_MINUTE="7")
    assert (chosen.rate_limit_per_minute, chosen.rate_limit_per_ip_per_minute) == (5, 7)
