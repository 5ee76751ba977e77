"""Quick builders for data tests: accounts, people, tasks, comments and their
notifications, written through the real db functions in real transactions.

Everything takes a `Database` (use the parametrised `db` fixture, so a test runs on
SQLite and PostgreSQL) and an explicit `now`, so tests that drive time stay exact.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from common.domain import Channel, NotificationKind, PersonKind, Plan
from common.events import DeliveryChanged
from common.settings import Settings
from db import accounts as db_accounts
from db import tasks as db_tasks
from db.engine import Database
from db.records import AccountRecord, PersonRecord
from db.tables import deliveries, delivery_events, messages, send_jobs
from domain.notifications import enqueue_notification
from domain.recipients import Addressee

MESSAGE_ID_DOMAIN = "beacon.test"
SECRET_KEY = "test-secret-key"
PUBLIC_BASE_URL = "http://beacon.test:8000"

# A fixed, whole-second start keeps times exact on every backend.
T0 = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class FakeClock:
    """A `clock` for the worker that moves only when told to."""

    now: dt.datetime = field(default_factory=utcnow)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings as the process would read them, with test defaults (SMTP_URL etc. in env)."""
    return Settings.from_env(
        {
            "DATA_DIR": str(tmp_path),
            "SECRET_KEY": SECRET_KEY,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "MAIL_FROM": f"Beacon <notifications@{MESSAGE_ID_DOMAIN}>",
            "RETRY_BASE_SECONDS": "1",
            "RETRY_MAX_SECONDS": "4",
            "SMTP_TIMEOUT_SECONDS": "5",
            "LEASE_SECONDS": "60",
            **env,
        }
    )


@dataclass(frozen=True)
class AccountSetup:
    account_id: uuid.UUID
    owner_id: uuid.UUID
    token: str


async def create_account(
    db: Database,
    *,
    plan: Plan = Plan.PAID,
    open_tracking: bool = True,
    show_all_recipients: bool = False,
    smtp_relay: str | None = None,
    name: str = "Acme",
    owner_email: str = "owner@example.test",
    owner_name: str = "Owner",
) -> AccountSetup:
    """An account, its first employee (the owner) and an API token."""
    async with db.write() as conn:
        new = await db_accounts.create_account(
            conn, name=name, plan=plan, email=owner_email, person_name=owner_name
        )
        await db_accounts.update_account(
            conn,
            new.account_id,
            {
                "open_tracking": open_tracking,
                "show_all_recipients": show_all_recipients,
                "smtp_relay": smtp_relay,
            },
        )
    return AccountSetup(account_id=new.account_id, owner_id=new.person_id, token=new.token)


async def account_row(db: Database, account_id: uuid.UUID) -> AccountRecord:
    async with db.read() as conn:
        return await db_accounts.get_account(conn, account_id)


async def add_people(
    db: Database,
    account_id: uuid.UUID,
    emails: Sequence[str | None],
    *,
    kind: PersonKind = PersonKind.CONTACT,
) -> list[PersonRecord]:
    """One person per entry (None: a person without an email address), named p0, p1, …"""
    async with db.write() as conn:
        return [
            await db_accounts.add_person(
                conn, account_id=account_id, kind=kind, name=f"p{i}", email=email
            )
            for i, email in enumerate(emails)
        ]


async def create_task(
    db: Database,
    account_id: uuid.UUID,
    *,
    subscriber_ids: Sequence[uuid.UUID],
    created_by: uuid.UUID | None = None,
    title: str = "Ship v2",
    now: dt.datetime = T0,
) -> uuid.UUID:
    async with db.write() as conn:
        return await db_tasks.insert_task(
            conn,
            account_id=account_id,
            title=title,
            created_by=created_by,
            subscriber_ids=subscriber_ids,
            now=now,
        )


async def notify_task_created(
    db: Database,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    recipients: Sequence[Addressee],
    now: dt.datetime = T0,
) -> list[DeliveryChanged]:
    """The task's own notification (what createTask enqueues)."""
    account = await account_row(db, account_id)
    async with db.write() as conn:
        return await enqueue_notification(
            conn,
            account=account,
            task_id=task_id,
            comment_id=None,
            kind=NotificationKind.TASK_CREATED,
            recipients=recipients,
            configured=frozenset(Channel),
            message_id_domain=MESSAGE_ID_DOMAIN,
            now=now,
        )


@dataclass(frozen=True)
class Notified:
    """A comment (or a task creation when comment_id is None) and what it enqueued."""

    task_id: uuid.UUID
    comment_id: uuid.UUID | None
    changes: list[DeliveryChanged]

    @property
    def delivery_ids(self) -> list[uuid.UUID]:
        return [change.delivery_id for change in self.changes]


async def add_comment(
    db: Database,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    author_id: uuid.UUID | None,
    recipients: Sequence[Addressee],
    body: str = "Looks good",
    is_system: bool = False,
    now: dt.datetime = T0,
) -> Notified:
    """A comment and its notification, in one transaction as addComment writes them."""
    account = await account_row(db, account_id)
    async with db.write() as conn:
        comment_id = await db_tasks.insert_comment(
            conn,
            account_id=account_id,
            task_id=task_id,
            author_id=author_id,
            body=body,
            is_system=is_system,
            now=now,
        )
        changes = await enqueue_notification(
            conn,
            account=account,
            task_id=task_id,
            comment_id=comment_id,
            kind=NotificationKind.COMMENT_ADDED,
            recipients=recipients,
            configured=frozenset(Channel),
            message_id_domain=MESSAGE_ID_DOMAIN,
            now=now,
        )
    return Notified(task_id=task_id, comment_id=comment_id, changes=changes)


async def add_comments(
    db: Database,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    author_id: uuid.UUID | None,
    recipients: Sequence[Addressee],
    count: int,
    now: dt.datetime = T0,
) -> list[Notified]:
    """`count` comments, each notifying every recipient, all in one transaction (each
    notification's rows go in with executemany). Comments are 1 ms apart, in order."""
    account = await account_row(db, account_id)
    result: list[Notified] = []
    async with db.write() as conn:
        for i in range(count):
            at = now + dt.timedelta(milliseconds=i)
            comment_id = await db_tasks.insert_comment(
                conn,
                account_id=account_id,
                task_id=task_id,
                author_id=author_id,
                body=f"comment {i}",
                is_system=False,
                now=at,
            )
            changes = await enqueue_notification(
                conn,
                account=account,
                task_id=task_id,
                comment_id=comment_id,
                kind=NotificationKind.COMMENT_ADDED,
                recipients=recipients,
                configured=frozenset(Channel),
                message_id_domain=MESSAGE_ID_DOMAIN,
                now=at,
            )
            result.append(Notified(task_id=task_id, comment_id=comment_id, changes=changes))
    return result


@dataclass(frozen=True)
class DueComments:
    account: AccountSetup
    task_id: uuid.UUID
    notified: list[Notified]


async def due_comments(db: Database, *, people: int, comments: int) -> DueComments:
    """`people` contacts following a task and `comments` comments on it, each notifying
    every contact by email: people x comments deliveries, each its own message and job,
    due now (the builders' default time is in the future: never due)."""
    account = await create_account(db)
    contacts = await add_people(
        db, account.account_id, [f"person{i}@example.test" for i in range(people)]
    )
    now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    task_id = await create_task(
        db,
        account.account_id,
        subscriber_ids=[contact.id for contact in contacts],
        created_by=account.owner_id,
        now=now,
    )
    notified = await add_comments(
        db,
        account.account_id,
        task_id,
        author_id=account.owner_id,
        recipients=contacts,
        count=comments,
        now=now,
    )
    return DueComments(account, task_id, notified)


@dataclass(frozen=True)
class Scenario:
    """An account with a task whose subscribers got one comment notification."""

    account: AccountSetup
    people: list[PersonRecord]
    notified: Notified

    @property
    def account_id(self) -> uuid.UUID:
        return self.account.account_id

    @property
    def task_id(self) -> uuid.UUID:
        return self.notified.task_id


async def commented_task(
    db: Database,
    emails: Sequence[str | None],
    *,
    plan: Plan = Plan.PAID,
    open_tracking: bool = True,
    show_all_recipients: bool = False,
    smtp_relay: str | None = None,
    now: dt.datetime = T0,
) -> Scenario:
    """Account + one person per email + a task they follow + the owner's comment on it."""
    account = await create_account(
        db,
        plan=plan,
        open_tracking=open_tracking,
        show_all_recipients=show_all_recipients,
        smtp_relay=smtp_relay,
    )
    people = await add_people(db, account.account_id, emails)
    task_id = await create_task(
        db,
        account.account_id,
        subscriber_ids=[account.owner_id, *(person.id for person in people)],
        created_by=account.owner_id,
        now=now,
    )
    notified = await add_comment(
        db, account.account_id, task_id, author_id=account.owner_id, recipients=people, now=now
    )
    return Scenario(account=account, people=people, notified=notified)


# Reading back what was written (plain SELECTs, for assertions).


async def delivery(db: Database, delivery_id: uuid.UUID) -> Row[Any]:
    async with db.read() as conn:
        return (await conn.execute(deliveries.select().where(deliveries.c.id == delivery_id))).one()


async def deliveries_of(db: Database, delivery_ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
    """The rows in the order of `delivery_ids`."""
    async with db.read() as conn:
        rows = (
            await conn.execute(deliveries.select().where(deliveries.c.id.in_(delivery_ids)))
        ).all()
    by_id = {row.id: row for row in rows}
    return [by_id[delivery_id] for delivery_id in delivery_ids]


async def events_of(db: Database, delivery_id: uuid.UUID) -> list[Row[Any]]:
    async with db.read() as conn:
        return list(
            (
                await conn.execute(
                    delivery_events.select()
                    .where(delivery_events.c.delivery_id == delivery_id)
                    .order_by(delivery_events.c.id)
                )
            ).all()
        )


async def message_of(db: Database, delivery_id: uuid.UUID) -> Row[Any]:
    async with db.read() as conn:
        return (
            await conn.execute(
                messages.select()
                .join(deliveries, deliveries.c.message_id == messages.c.id)
                .where(deliveries.c.id == delivery_id)
            )
        ).one()


async def job_of(db: Database, message_id: uuid.UUID) -> Row[Any] | None:
    async with db.read() as conn:
        return (
            await conn.execute(send_jobs.select().where(send_jobs.c.message_id == message_id))
        ).first()


async def count_rows(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
