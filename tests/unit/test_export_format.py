"""The export's rules without a server: cells a spreadsheet would run are quoted, query
parameters become the log's filter or a clear error, and rate ranges are whole buckets."""

from __future__ import annotations

import datetime as dt

import pytest
from graphql import GraphQLError

from common.domain import Channel, DeliveryState
from db.stats import Bucket
from resolvers.delivery_log import MAX_BUCKETS, buckets_between
from web.export import parse_filter, safe_cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+15551234567", "'+15551234567"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("ann@acme.test", "ann@acme.test"),
        ("a=b", "a=b"),
        ("", ""),
        (None, None),
        (3, 3),
    ],
)
def test_a_cell_that_would_start_a_formula_is_quoted(value: object, written: object) -> None:
    assert safe_cell(value) == written


def test_query_parameters_make_the_filter() -> None:
    params = {
        "state": "FAILED",
        "channel": "EMAIL",
        "since": "2030-01-01T00:00:00Z",
        "until": "2030-01-02T00:00:00+02:00",
        "address": "ann@acme.test",
        "taskId": "8c3f6f8e-6f0e-4d5e-9d0a-5d7c2b1e4f00",
    }

    wanted = parse_filter(params, list(params))

    assert wanted.state is DeliveryState.FAILED
    assert wanted.channel is Channel.EMAIL
    assert wanted.since == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert wanted.until == dt.datetime(2030, 1, 1, 22, tzinfo=dt.UTC)
    assert wanted.address == "ann@acme.test"
    assert str(wanted.task_id) == params["taskId"]


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"state": "LOST"}, "state", "QUEUED, SENT, FAILED, READ"),
        ({"since": "monday"}, "since", "ISO 8601"),
        ({"until": "2030-01-01T00:00:00"}, "until", "time zone"),
        ({"colour": "red"}, "colour", "Unknown parameter"),
        ({"address": "x" * 3000}, "address", "1 to 2000"),
    ],
)
def test_a_bad_parameter_is_named_in_the_error(
    params: dict[str, str], field: str, says: str
) -> None:
    with pytest.raises(GraphQLError) as raised:
        parse_filter(params, list(params))

    assert raised.value.extensions == {"code": "BAD_USER_INPUT", "field": field}
    assert says in raised.value.message
    assert len(raised.value.message) < 400  # the input is echoed shortened


def test_a_rate_range_widens_to_whole_utc_buckets_and_has_a_limit() -> None:
    since = dt.datetime(2030, 1, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    until = dt.datetime(2030, 1, 1, 9, 15, tzinfo=dt.UTC)

    start, end, count = buckets_between(since, until, Bucket.HOUR)

    assert (start, end, count) == (
        dt.datetime(2030, 1, 1, 7, tzinfo=dt.UTC),
        dt.datetime(2030, 1, 1, 10, tzinfo=dt.UTC),
        3,
    )
    assert buckets_between(since, until, Bucket.DAY)[2] == 1
    longest = since + dt.timedelta(hours=MAX_BUCKETS - 1)
    assert buckets_between(since, longest, Bucket.HOUR)[2] == MAX_BUCKETS
    with pytest.raises(GraphQLError):
        buckets_between(since, longest + dt.timedelta(hours=1), Bucket.HOUR)
