"""Result types shared by every channel, so the worker records outcomes the same way."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    # Worth retrying: the same request may succeed later.
    TRANSIENT = "TRANSIENT"
    # Retrying cannot help: the delivery fails for good.
    PERMANENT = "PERMANENT"


@dataclass(frozen=True)
class RecipientResult:
    address: str
    outcome: Outcome
    # The server's reply code ("250", "550", "451"), or a symbolic one when there was no
    # reply at all ("CONNECTION_REFUSED", "TIMEOUT", "DISCONNECTED", "TLS_ERROR", ...).
    code: str
    # The server's own reply, or a readable description of the network error.
    message: str
    # For ACCEPTED: the server that took responsibility for the message.
    accepted_by: str | None = None
