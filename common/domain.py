"""The domain's vocabulary: states, channels, plans, and the rules over them.

Everything here is pure; every layer imports it and it imports nothing of ours.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class DeliveryState(enum.StrEnum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    FAILED = "FAILED"
    READ = "READ"


class Channel(enum.StrEnum):
    EMAIL = "EMAIL"
    TELEGRAM = "TELEGRAM"
    WHATSAPP = "WHATSAPP"
    SMS = "SMS"
    WEBHOOK = "WEBHOOK"
    IN_APP = "IN_APP"


class Plan(enum.StrEnum):
    FREE = "FREE"
    PAID = "PAID"
    PREMIUM = "PREMIUM"

    @property
    def tracks_delivery(self) -> bool:
        """Delivery tracking exists only in paid and premium accounts (the source page)."""
        return self is not Plan.FREE


class PersonKind(enum.StrEnum):
    EMPLOYEE = "EMPLOYEE"
    CONTACT = "CONTACT"


class NotificationKind(enum.StrEnum):
    TASK_CREATED = "TASK_CREATED"
    COMMENT_ADDED = "COMMENT_ADDED"
    INVITATION = "INVITATION"  # a sign-in link, about no task (issue 14)


class NoticeKind(enum.StrEnum):
    """What a notification says happened: its subject line (and a messenger's first
    line) starts with that."""

    NEW_TASK = "NEW_TASK"
    NEW_COMMENT = "NEW_COMMENT"  # a person's comment
    SYSTEM_COMMENT = "SYSTEM_COMMENT"  # a comment written by automation, with no author
    SCENARIO_MESSAGE = "SCENARIO_MESSAGE"  # a scenario's own text (its template)


# Which state may follow which (DESIGN.md section 2). A state never moves backwards:
# a late "sent" after "read" changes nothing but the history.
_ALLOWED: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.QUEUED: frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.READ}),
    DeliveryState.SENT: frozenset({DeliveryState.READ, DeliveryState.FAILED}),
    DeliveryState.FAILED: frozenset({DeliveryState.QUEUED}),
    DeliveryState.READ: frozenset(),
}


def can_transition(current: DeliveryState, new: DeliveryState) -> bool:
    return new in _ALLOWED[current]


@dataclass(frozen=True)
class StatusSummary:
    """The icon of a task or comment: one state and the count per state."""

    state: DeliveryState
    total: int
    queued: int
    sent: int
    failed: int
    read: int


def summarize(states: Iterable[DeliveryState]) -> StatusSummary | None:
    """The icon rule: FAILED if any failed, else QUEUED if any is queued, else READ if
    any was read, else SENT. No deliveries, no icon."""
    return summarize_counts(Counter(states))


def summarize_counts(counts: Mapping[DeliveryState, int]) -> StatusSummary | None:
    """`summarize` from how many deliveries are in each state."""
    counted = Counter(counts)
    total = sum(counted.values())
    if total == 0:
        return None
    for state in (DeliveryState.FAILED, DeliveryState.QUEUED, DeliveryState.READ):
        if counted[state]:
            break
    else:
        state = DeliveryState.SENT
    return StatusSummary(
        state=state,
        total=total,
        queued=counted[DeliveryState.QUEUED],
        sent=counted[DeliveryState.SENT],
        failed=counted[DeliveryState.FAILED],
        read=counted[DeliveryState.READ],
    )


def predecessors(new: DeliveryState) -> frozenset[DeliveryState]:
    """The states from which `new` may be entered."""
    return frozenset(state for state, allowed in _ALLOWED.items() if new in allowed)


class ReadConfidence(enum.StrEnum):
    """How much an open says that a person read the email."""

    HUMAN = "HUMAN"  # a mail client showed it
    PROXY = "PROXY"  # an image proxy fetched it for the reader (Gmail): a read, usually
    MACHINE = "MACHINE"  # a privacy prefetch or a security scanner: not a read


def fast_open_reason(seconds: float) -> str:
    """Why an open this soon after sending is MACHINE: "opened 0.4 s after sending"."""
    return f"opened {seconds:.1f}".rstrip("0").rstrip(".") + " s after sending"


class TrackingConsent(enum.StrEnum):
    UNKNOWN = "UNKNOWN"
    GRANTED = "GRANTED"
    DENIED = "DENIED"


class ScenarioTrigger(enum.StrEnum):
    TASK_CREATED = "TASK_CREATED"
    COMMENT_ADDED = "COMMENT_ADDED"
    KEYWORD = "KEYWORD"  # a comment that contains the scenario's keyword


class ScenarioAction(enum.StrEnum):
    EMAIL_TASK_CONTACTS = "EMAIL_TASK_CONTACTS"  # the task's subscribers who are contacts
    EMAIL_PERSON = "EMAIL_PERSON"  # one given person
