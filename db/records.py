"""The rows db/ hands to other packages, typed: one frozen record per table, built
from a result row with `of`, so callers read checked attributes instead of Row[Any]."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import Field, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

from sqlalchemy.engine import Row


class _Record:
    __slots__ = ()
    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def of(cls, row: Row[Any]) -> Self:
        """The record of a row that selected (at least) the record's columns."""
        mapping = row._mapping
        values: dict[str, Any] = {field.name: mapping[field.name] for field in fields(cls)}
        return cls(**values)

    @classmethod
    def of_all(cls, rows: Sequence[Row[Any]]) -> list[Self]:
        return [cls.of(row) for row in rows]


@dataclass(frozen=True, slots=True)
class AccountRecord(_Record):
    id: uuid.UUID
    name: str
    plan: str
    open_tracking: bool
    show_all_recipients: bool
    smtp_relay: str | None
    require_tracking_consent: bool
    count_machine_opens: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PersonRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    name: str
    email: str | None
    telegram_chat_id: str | None
    phone: str | None
    webhook_url: str | None
    disabled_channels: list[str] | None
    tracking_consent: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TaskRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    title: str
    created_by: uuid.UUID | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CommentRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    task_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    is_system: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ScenarioRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    trigger: str
    keyword: str | None
    action: str
    person_id: uuid.UUID | None
    template: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SuppressionRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    channel: str
    address: str
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BounceRecord(_Record):
    """A bounce as the API lists it: everything but the raw message."""

    id: uuid.UUID
    account_id: uuid.UUID | None
    message_id: uuid.UUID | None
    delivery_id: uuid.UUID | None
    received_at: dt.datetime
    source: str
    kind: str
    parsed: bool
    summary: str
