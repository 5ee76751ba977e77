"""What a client may store: names, titles, addresses, a person's fields.

Each validator returns the value cleaned (trimmed, normalised) or raises InvalidInput
naming the field as the API spells it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from common.domain import Channel, TrackingConsent
from domain.errors import InvalidInput
from domain.text import multi_line, one_line, shown

MAX_NAME = 200
MAX_TITLE = 500
MAX_BODY = 20_000
MAX_TOKEN_NAME = 200
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
# ASCII digits only: `\d` would take any script's digits.
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_TELEGRAM_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
# Bytes, not characters: the address is in a unique index, whose entries PostgreSQL
# limits to about 2,700 bytes.
MAX_URL_BYTES = 2000


def text(value: str, field: str, limit: int, *, lines: bool = False) -> str:
    """Required text of at most `limit` characters, trimmed; `lines` allows line breaks."""
    cleaned = (multi_line if lines else one_line)(value, field).strip()
    if not cleaned:
        raise InvalidInput(f"'{field}' must not be empty.", field=field)
    if len(cleaned) > limit:
        raise InvalidInput(f"'{field}' is longer than {limit} characters.", field=field)
    return cleaned


def optional_line(value: str | None, field: str) -> str | None:
    """An address: one line of text, or None when empty."""
    if value is None:
        return None
    return one_line(value, field).strip() or None


def validate_name(value: str) -> str:
    return text(value, "name", MAX_NAME)


def validate_title(value: str) -> str:
    return text(value, "title", MAX_TITLE)


def validate_body(value: str) -> str:
    return text(value, "body", MAX_BODY, lines=True)


def validate_token_name(value: str) -> str:
    """What an API token is for (the API's `name`, the CLI's `--name`)."""
    return text(value, "name", MAX_TOKEN_NAME)


def validate_email(value: str | None) -> str | None:
    email = optional_line(value, "email")
    if email is None:
        return None
    if len(email) > 320 or not _EMAIL.match(email) or parseaddr(email)[1] != email:
        raise InvalidInput(f"'{shown(email)}' is not an email address.", field="email")
    return email


def validate_phone(value: str | None) -> str | None:
    phone = optional_line(value, "phone")
    if phone is None:
        return None
    phone = re.sub(r"[\s().-]", "", phone)
    if not _PHONE.fullmatch(phone):
        raise InvalidInput(
            f"'{shown(value)}' is not a phone number in international form (+15551234567).",
            field="phone",
        )
    return phone


def validate_telegram_chat(value: str | None) -> str | None:
    chat = optional_line(value, "telegramChatId")
    if chat is not None and not _TELEGRAM_CHAT.fullmatch(chat):
        raise InvalidInput(
            f"'{shown(chat)}' is not a Telegram chat id (a number, or @channelname).",
            field="telegramChatId",
        )
    return chat


def validate_webhook_url(value: str | None) -> str | None:
    url = optional_line(value, "webhookUrl")
    if url is None:
        return None
    if len(url.encode()) > MAX_URL_BYTES:
        raise InvalidInput(
            f"'webhookUrl' is longer than {MAX_URL_BYTES} bytes.", field="webhookUrl"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"'{shown(url)}' is not an http(s) URL.", field="webhookUrl")
    return url


def not_null(name: str, value: object) -> None:
    """A field a record always has: an explicit null is a mistake, not "clear it"."""
    if value is None:
        field = camel(name)
        raise InvalidInput(
            f"'{field}' cannot be null: leave it out to keep it as it is.", field=field
        )


def camel(name: str) -> str:
    """A column's name as the API spells the field: tracking_consent -> trackingConsent."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class PersonFields:
    """What a mutation may set on a person: the fields given, validated (a field left out
    stays as it is)."""

    values: dict[str, Any]

    @classmethod
    def validate(cls, **given: Any) -> PersonFields:
        for key, value in given.items():
            if key in _NOT_CLEARABLE:
                not_null(key, value)
        return cls({key: _VALIDATORS[key](value) for key, value in given.items()})


# Fields a person always has.
_NOT_CLEARABLE = frozenset({"name", "tracking_consent"})


def _channels(value: list[Channel] | None) -> list[str]:
    return sorted({Channel(channel).value for channel in value or ()})


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "name": validate_name,
    "email": validate_email,
    "telegram_chat_id": validate_telegram_chat,
    "phone": validate_phone,
    "webhook_url": validate_webhook_url,
    "disabled_channels": _channels,
    "tracking_consent": lambda consent: TrackingConsent(consent).value,
}
