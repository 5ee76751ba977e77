"""Automation scenarios: define them, and fire them when a task or comment is written.

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
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import (
    Channel,
    NotificationKind,
    PersonKind,
    ScenarioAction,
    ScenarioTrigger,
)
from common.events import DeliveryChanged
from db import accounts as db_accounts
from db import scenarios as db_scenarios
from db import tasks as db_tasks
from db.notify import enqueue_notification
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, not_found
from resolvers.text import multi_line, one_line

MAX_NAME = 200
MAX_KEYWORD = 200
MAX_TEMPLATE = 5000


async def create_scenario(
    info: Info,
    *,
    name: str,
    trigger: ScenarioTrigger,
    keyword: str | None,
    action: ScenarioAction,
    person_id: str | None,
    template: str,
) -> Row[Any]:
    viewer = info.context.require_viewer()
    name = one_line(name, "name").strip()
    if not name or len(name) > MAX_NAME:
        raise bad_input(f"'name' must be 1 to {MAX_NAME} characters.", field="name")
    keyword = one_line(keyword or "", "keyword").strip() or None
    if trigger is ScenarioTrigger.KEYWORD and keyword is None:
        raise bad_input("A KEYWORD scenario needs a keyword.", field="keyword")
    if keyword is not None and len(keyword) > MAX_KEYWORD:
        raise bad_input(f"'keyword' is longer than {MAX_KEYWORD} characters.", field="keyword")
    if not multi_line(template, "template").strip() or len(template) > MAX_TEMPLATE:
        raise bad_input(f"'template' must be 1 to {MAX_TEMPLATE} characters.", field="template")
    person: uuid.UUID | None = None
    if action is ScenarioAction.EMAIL_PERSON:
        if person_id is None:
            raise bad_input("EMAIL_PERSON needs a personId.", field="personId")
        person = parse_id(person_id, "person")
        if await info.context.loaders.person.load(person) is None:
            raise not_found("person")
    async with info.context.db.write() as conn:
        return await db_scenarios.create_scenario(
            conn,
            account_id=viewer.account_id,
            name=name,
            trigger=trigger.value,
            keyword=keyword if trigger is ScenarioTrigger.KEYWORD else None,
            action=action.value,
            person_id=person,
            template=template,
            now=dt.datetime.now(dt.UTC),
        )


async def scenarios(info: Info) -> Sequence[Row[Any]]:
    async with info.context.db.read() as conn:
        return await db_scenarios.list_scenarios(conn, info.context.require_viewer().account_id)


async def delete_scenario(info: Info, scenario_id: str) -> bool:
    parsed = parse_id(scenario_id, "scenario")
    async with info.context.db.write() as conn:
        deleted = await db_scenarios.delete_scenario(
            conn, info.context.require_viewer().account_id, parsed
        )
    if not deleted:
        raise not_found("scenario")
    return True


def render(template: str, *, task_title: str, comment: str | None) -> str:
    """Plain placeholder substitution: `{task}` and `{comment}`. Never str.format, which
    would let a tenant's template reach into Python objects."""
    return template.replace("{task}", task_title).replace("{comment}", comment or "")


def _fires(scenario: Row[Any], triggers: set[ScenarioTrigger], comment: str | None) -> bool:
    trigger = ScenarioTrigger(scenario.trigger)
    if trigger is ScenarioTrigger.KEYWORD:
        return (
            ScenarioTrigger.KEYWORD in triggers
            and comment is not None
            and scenario.keyword.lower() in comment.lower()
        )
    return trigger in triggers


async def fire_scenarios(
    conn: AsyncConnection,
    *,
    account: Row[Any],
    task: Row[Any],
    subscribers: Sequence[Row[Any]],
    triggers: set[ScenarioTrigger],
    comment: str | None,
    message_id_domain: str,
    now: dt.datetime,
    author_id: uuid.UUID | None = None,
) -> list[DeliveryChanged]:
    changes: list[DeliveryChanged] = []
    for scenario in await db_scenarios.list_scenarios(conn, account.id):
        if not _fires(scenario, triggers, comment):
            continue
        recipients = await _recipients(conn, account.id, scenario, subscribers)
        # The author is never notified of their own writing (issue 14).
        recipients = [person for person in recipients if person.id != author_id]
        if not recipients:
            continue
        addresses = ", ".join(person.email for person in recipients)
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
    scenario: Row[Any],
    subscribers: Sequence[Row[Any]],
) -> list[Row[Any]]:
    if ScenarioAction(scenario.action) is ScenarioAction.EMAIL_PERSON:
        found = await db_accounts.people_by_ids(conn, account_id, [scenario.person_id])
        people = list(found.values())
    else:
        people = [p for p in subscribers if p.kind == PersonKind.CONTACT.value]
    return [person for person in people if person.email]
