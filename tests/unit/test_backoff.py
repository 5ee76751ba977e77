import pytest

from sending.backoff import retry_delay


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40)])
def test_the_delay_doubles_per_attempt_within_its_jitter_band(
    attempt: int, low: float, high: float
) -> None:
    assert retry_delay(attempt, base=10, cap=1000, rand=0.0) == low
    assert retry_delay(attempt, base=10, cap=1000, rand=1.0) == high


def test_the_delay_never_exceeds_the_cap() -> None:
    assert retry_delay(50, base=10, cap=300, rand=1.0) == 300


def test_jitter_spreads_retries_that_failed_together() -> None:
    delays = {retry_delay(4, base=10, cap=1000) for _ in range(100)}

    assert len(delays) > 50
    assert all(40 <= d <= 80 for d in delays)
