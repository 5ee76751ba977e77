"""One person per address and channel in an account (issue 13, item 13), decided by the
database's unique indexes, so that concurrent adds cannot both win."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from common.domain import PersonKind
from db import accounts as db_accounts
from db.engine import Database
from tests.support.builders import create_account


async def add(db: Database, account_id: uuid.UUID, name: str, **addresses: Any) -> Any:
    async with db.write() as conn:
        return await db_accounts.add_person(
            conn, account_id=account_id, kind=PersonKind.CONTACT, name=name, **addresses
        )


async def test_an_address_another_person_has_is_refused_naming_that_person(db: Database) -> None:
    account = await create_account(db)
    ann = await add(db, account.account_id, "Ann", email="ann@example.test", phone="+15550001")
    bob = await add(db, account.account_id, "Bob", email="bob@example.test")

    cases: list[tuple[str, dict[str, str]]] = [
        ("email", {"email": "ANN@Example.test"}),
        ("phone", {"phone": "+15550001"}),
    ]
    for column, addresses in cases:
        # When another person is added with it, or Bob is given it
        with pytest.raises(db_accounts.AddressTaken) as added:
            await add(db, account.account_id, "Ann again", **addresses)
        with pytest.raises(db_accounts.AddressTaken) as updated:
            async with db.write() as conn:
                await db_accounts.update_person(conn, account.account_id, bob.id, addresses)

        # Then it is refused, naming Ann and the channel
        for raised in (added, updated):
            assert (raised.value.column, raised.value.holder.id) == (column, ann.id)

    # And nobody was added or changed
    async with db.read() as conn:
        people = await db_accounts.list_people(conn, account.account_id)
    assert [(p.name, p.email) for p in people] == [
        ("Owner", "owner@example.test"),
        ("Ann", "ann@example.test"),
        ("Bob", "bob@example.test"),
    ]

    # And Ann may give her own address another case, keeping her phone
    async with db.write() as conn:
        recased = await db_accounts.update_person(
            conn, account.account_id, ann.id, {"email": "Ann@Example.test", "phone": "+15550001"}
        )
    assert recased is not None
    assert recased.email == "Ann@Example.test"
    # And another account's people may have the same addresses
    globex = await create_account(db, name="Globex", owner_email="owner@globex.test")
    other = await add(db, globex.account_id, "Ann", email="ann@example.test", phone="+15550001")
    assert other.email == "ann@example.test"


async def test_of_two_concurrent_adds_of_one_address_exactly_one_wins(db: Database) -> None:
    account = await create_account(db)

    results = await asyncio.gather(
        *(
            add(db, account.account_id, f"Ann {n}", webhook_url="https://hooks.example.test/a")
            for n in range(4)
        ),
        return_exceptions=True,
    )

    winners = [result for result in results if not isinstance(result, BaseException)]
    losers = [result for result in results if isinstance(result, db_accounts.AddressTaken)]
    assert len(winners) == 1, results
    assert len(losers) == 3, results
    assert {loser.holder.id for loser in losers} == {winners[0].id}
