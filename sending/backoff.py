"""When to try a transient failure again."""

from __future__ import annotations

import random


def retry_delay(attempt: int, *, base: float, cap: float, rand: float | None = None) -> float:
    """Exponential backoff with "equal jitter": half the delay is fixed, half random.

    The fixed half keeps a retry from firing at once; the random half spreads out the
    retries of many deliveries that failed together (one server outage).
    """
    exponential = min(cap, base * 2.0 ** max(0, attempt - 1))
    r = random.random() if rand is None else rand
    return exponential / 2 + exponential / 2 * r
