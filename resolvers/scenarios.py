"""Automation scenarios: define, list and delete them (their rules: domain/scenarios.py)."""

from __future__ import annotations

import uuid

from common.domain import ScenarioAction, ScenarioTrigger
from common.time import utcnow
from db import scenarios as db_scenarios
from db.records import ScenarioRecord
from domain.scenarios import validate_scenario
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, not_found
from resolvers.roles import require_manager


async def create_scenario(
    info: Info,
    *,
    name: str,
    trigger: ScenarioTrigger,
    keyword: str | None,
    action: ScenarioAction,
    person_id: str | None,
    template: str,
) -> ScenarioRecord:
    viewer = require_manager(info, "Creating a scenario")
    fields = validate_scenario(name=name, trigger=trigger, keyword=keyword, template=template)
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
            name=fields.name,
            trigger=trigger.value,
            keyword=fields.keyword,
            action=action.value,
            person_id=person,
            template=fields.template,
            now=utcnow(),
        )


async def scenarios(info: Info) -> list[ScenarioRecord]:
    async with info.context.db.read() as conn:
        return await db_scenarios.list_scenarios(conn, info.context.require_viewer().account_id)


async def delete_scenario(info: Info, scenario_id: str) -> bool:
    viewer = require_manager(info, "Deleting a scenario")
    parsed = parse_id(scenario_id, "scenario")
    async with info.context.db.write() as conn:
        deleted = await db_scenarios.delete_scenario(conn, viewer.account_id, parsed)
    if not deleted:
        raise not_found("scenario")
    return True
