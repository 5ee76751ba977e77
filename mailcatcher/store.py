"""The mail catcher's inbox: the last few hundred messages, in memory only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from common.time import utcnow

DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class StoredMessage:
    id: str
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes
    message: EmailMessage

    @property
    def subject(self) -> str:
        return _header(self.message, "Subject")

    @property
    def from_(self) -> str:
        return _header(self.message, "From")

    @property
    def to(self) -> str:
        return _header(self.message, "To")

    @property
    def message_id(self) -> str:
        return _header(self.message, "Message-ID")

    def body(self, subtype: str) -> str | None:
        """The decoded text/<subtype> part a mail client would show, if there is one."""
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            return None
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            # An unknown charset or broken encoding: show what we can rather than nothing.
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
        return content if isinstance(content, str) else None


def _header(message: EmailMessage, name: str) -> str:
    value = message.get(name)
    return "" if value is None else str(value)


class MailStore:
    """Bounded so that a long-running embedded server cannot fill its memory with mail."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("MailStore limit must be at least 1")
        self.limit = limit
        # dicts keep insertion order, so the first key is always the oldest message.
        self._messages: dict[str, StoredMessage] = {}

    def add(self, envelope_from: str, envelope_to: Sequence[str], raw: bytes) -> StoredMessage:
        parsed = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        stored = StoredMessage(
            id=uuid.uuid4().hex,
            received_at=utcnow(),
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            raw=raw,
            message=parsed,
        )
        self._messages[stored.id] = stored
        while len(self._messages) > self.limit:
            del self._messages[next(iter(self._messages))]
        return stored

    def get(self, message_id: str) -> StoredMessage | None:
        return self._messages.get(message_id)

    def newest_first(self) -> list[StoredMessage]:
        return list(reversed(self._messages.values()))

    def clear(self) -> None:
        self._messages.clear()

    def __len__(self) -> int:
        return len(self._messages)
