"""Automation scenarios of an account."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import ScenarioRecord
from db.tables import insert_new, scenarios


async def create_scenario(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    name: str,
    trigger: str,
    keyword: str | None,
    action: str,
    person_id: uuid.UUID | None,
    template: str,
    now: dt.datetime,
) -> ScenarioRecord:
    scenario_id = await insert_new(
        conn,
        scenarios,
        account_id=account_id,
        name=name,
        trigger=trigger,
        keyword=keyword,
        action=action,
        person_id=person_id,
        template=template,
        created_at=now,
    )
    return ScenarioRecord.of(
        (await conn.execute(scenarios.select().where(scenarios.c.id == scenario_id))).one()
    )


async def list_scenarios(conn: AsyncConnection, account_id: uuid.UUID) -> list[ScenarioRecord]:
    rows = await conn.execute(
        scenarios.select()
        .where(scenarios.c.account_id == account_id)
        .order_by(scenarios.c.created_at, scenarios.c.id)
    )
    return ScenarioRecord.of_all(rows.all())


async def delete_scenario(
    conn: AsyncConnection, account_id: uuid.UUID, scenario_id: uuid.UUID
) -> bool:
    result = await conn.execute(
        scenarios.delete().where(
            scenarios.c.id == scenario_id, scenarios.c.account_id == account_id
        )
    )
    return result.rowcount > 0
