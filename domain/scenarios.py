"""Automation scenarios' rules: what a valid scenario is, when one fires, whom it
emails and with what text, and firing them.

A scenario that fires writes a system comment on the task ("Scenario 'Notify client'
sent an email to …") whose notification emails the scenario's recipients with the
rendered template, so it gets its own deliveries and icon. It runs in the transaction
of the write that triggered it. System comments never trigger scenarios, so a scenario
cannot trigger itself in a loop.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, NotificationKind, PersonKind, ScenarioAction, ScenarioTrigger
from common.events import DeliveryChanged
from db import accounts as db_accounts
from db import scenarios as db_scenarios
from db import tasks as db_tasks
from db.records import PersonRecord, ScenarioRecord, TaskRecord
from domain.errors import InvalidInput
from domain.notifications import NotifiedAccount, enqueue_notification
from domain.text import multi_line, one_line

MAX_NAME = 200
MAX_KEYWORD = 200
MAX_TEMPLATE = 5000


@dataclass(frozen=True)
class ScenarioFields:
    """A scenario's text fields, validated: name and template trimmed, and a keyword
    only where the trigger is KEYWORD."""

    name: str
    keyword: str | None
    template: str


def validate_scenario(
    *, name: str, trigger: ScenarioTrigger, keyword: str | None, template: str
) -> ScenarioFields:
    name = one_line(name, "name").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"'name' must be 1 to {MAX_NAME} characters.", field="name")
    keyword = one_line(keyword or "", "keyword").strip() or None
    if trigger is ScenarioTrigger.KEYWORD and keyword is None:
        raise InvalidInput("A KEYWORD scenario needs a keyword.", field="keyword")
    if keyword is not None and len(keyword) > MAX_KEYWORD:
        raise InvalidInput(f"'keyword' is longer than {MAX_KEYWORD} characters.", field="keyword")
    if not multi_line(template, "template").strip() or len(template) > MAX_TEMPLATE:
        raise InvalidInput(f"'template' must be 1 to {MAX_TEMPLATE} characters.", field="template")
    return ScenarioFields(
        name=name,
        keyword=keyword if trigger is ScenarioTrigger.KEYWORD else None,
        template=template,
    )


def render(template: str, *, task_title: str, comment: str | None) -> str:
    """Plain placeholder substitution: `{task}` and `{comment}`. Never str.format, which
    would let a tenant's template reach into Python objects."""
    return template.replace("{task}", task_title).replace("{comment}", comment or "")


def fires(scenario: ScenarioRecord, triggers: set[ScenarioTrigger], comment: str | None) -> bool:
    trigger = ScenarioTrigger(scenario.trigger)
    if trigger is ScenarioTrigger.KEYWORD:
        return (
            ScenarioTrigger.KEYWORD in triggers
            and comment is not None
            and scenario.keyword is not None
            and scenario.keyword.lower() in comment.lower()
        )
    return trigger in triggers


async def fire_scenarios(
    conn: AsyncConnection,
    *,
    account: NotifiedAccount,
    task: TaskRecord,
    subscribers: Sequence[PersonRecord],
    triggers: set[ScenarioTrigger],
    comment: str | None,
    message_id_domain: str,
    now: dt.datetime,
    author_id: uuid.UUID | None = None,
) -> list[DeliveryChanged]:
    changes: list[DeliveryChanged] = []
    for scenario in await db_scenarios.list_scenarios(conn, account.id):
        if not fires(scenario, triggers, comment):
            continue
        recipients = await _recipients(conn, account.id, scenario, subscribers)
        # The author is never notified of their own writing (issue 14).
        recipients = [person for person in recipients if person.id != author_id]
        if not recipients:
            continue
        addresses = ", ".join(person.email for person in recipients if person.email)
        system_comment = await db_tasks.insert_comment(
            conn,
            account_id=account.id,
            task_id=task.id,
            author_id=None,
            body=f"Scenario '{scenario.name}' sent an email to {addresses}.",
            is_system=True,
            now=now,
        )
        changes += await enqueue_notification(
            conn,
            account=account,
            task_id=task.id,
            comment_id=system_comment,
            kind=NotificationKind.COMMENT_ADDED,
            recipients=recipients,
            configured=frozenset({Channel.EMAIL}),
            message_id_domain=message_id_domain,
            now=now,
            message_text=render(scenario.template, task_title=task.title, comment=comment),
        )
    return changes


async def _recipients(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    scenario: ScenarioRecord,
    subscribers: Sequence[PersonRecord],
) -> list[PersonRecord]:
    """EMAIL_PERSON's one person, or the task's subscribers who are contacts; only
    those with an email address."""
    if ScenarioAction(scenario.action) is ScenarioAction.EMAIL_PERSON:
        wanted = [] if scenario.person_id is None else [scenario.person_id]
        people = list((await db_accounts.people_by_ids(conn, account_id, wanted)).values())
    else:
        people = [p for p in subscribers if p.kind == PersonKind.CONTACT.value]
    return [person for person in people if person.email]
