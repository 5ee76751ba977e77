import pytest

from common.domain import DeliveryState, can_transition, summarize

Q, S, F, R = DeliveryState.QUEUED, DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.READ


def test_no_deliveries_means_no_icon() -> None:
    assert summarize([]) is None


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S], S),
        ([S, S], S),
        ([S, R], R),
        ([R, R], R),
        ([Q, R, S], Q),
        ([Q, F], F),
        ([F, R, S, Q], F),
        ([Q], Q),
    ],
)
def test_the_icon_is_failed_then_queued_then_read_then_sent(
    states: list[DeliveryState], expected: DeliveryState
) -> None:
    summary = summarize(states)

    assert summary is not None
    assert summary.state is expected


def test_the_counts_add_up_per_state() -> None:
    summary = summarize([Q, S, S, F, R, R, R])

    assert summary is not None
    assert (summary.total, summary.queued, summary.sent, summary.failed, summary.read) == (
        7,
        1,
        2,
        1,
        3,
    )


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (Q, S, True),
        (Q, F, True),
        (Q, R, True),
        (S, R, True),
        (S, F, True),
        (F, Q, True),
        (R, S, False),
        (R, F, False),
        (R, Q, False),
        (S, Q, False),
        (F, S, False),
        (F, R, False),
    ],
)
def test_states_never_move_backwards(
    current: DeliveryState, new: DeliveryState, allowed: bool
) -> None:
    assert can_transition(current, new) is allowed
