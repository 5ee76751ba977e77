"""The team's types and root fields (issue 14): tokens, roles, people's changes,
the viewer's notifications. Mixed into the root types of
schema/operations.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from db.records import ApiTokenRecord
from domain.roles import Role
from domain.validation import not_null
from resolvers import notifications, queries, task_changes, team
from resolvers.context import Info
from schema.types import Person, Task


@strawberry.type(description="An API token: never its secret, which is shown once.")
class ApiToken:
    id: strawberry.ID
    name: str
    person_id: strawberry.ID
    created_at: dt.datetime
    last_used_at: dt.datetime | None = strawberry.field(
        description="Updated at most once a minute."
    )
    revoked_at: dt.datetime | None

    @strawberry.field
    async def person(self, info: Info) -> Person:
        return Person.from_row(await team.token_holder(info, self.person_id))

    @classmethod
    def from_row(cls, row: ApiTokenRecord) -> ApiToken:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            person_id=strawberry.ID(str(row.person_id)),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type
class NewApiToken:
    token: ApiToken
    secret: str = strawberry.field(
        description="Send it as 'Authorization: Bearer <secret>'. Shown only this once."
    )


@strawberry.type(description="A sign-in link sent by email; its delivery is tracked.")
class Invitation:
    id: strawberry.ID
    person_id: strawberry.ID
    expires_at: dt.datetime
    delivery_id: strawberry.ID = strawberry.field(
        description="The email's delivery: ask `delivery(id)` whether it was sent."
    )


@strawberry.input(description="Only the fields given change.")
class UpdateTaskInput:
    title: str | None = strawberry.UNSET
    closed: bool | None = strawberry.UNSET


def _given(value: object) -> Any:
    return None if value is strawberry.UNSET else value


@strawberry.type
class TeamQuery:
    @strawberry.field
    async def api_tokens(
        self, info: Info, person_id: strawberry.ID | None = None
    ) -> list[ApiToken]:
        return [ApiToken.from_row(row) for row in await team.api_tokens(info, person_id)]


@strawberry.type
class TeamMutation:
    @strawberry.mutation
    async def create_api_token(
        self, info: Info, person_id: strawberry.ID, name: str
    ) -> NewApiToken:
        row, secret = await team.create_api_token(info, person_id, name)
        return NewApiToken(token=ApiToken.from_row(row), secret=secret)

    @strawberry.mutation
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        return ApiToken.from_row(await team.revoke_api_token(info, id))

    @strawberry.mutation
    async def set_role(self, info: Info, person_id: strawberry.ID, role: Role) -> Person:
        return Person.from_row(await team.set_role(info, person_id, Role(role)))

    @strawberry.mutation
    async def invite_person(self, info: Info, person_id: strawberry.ID) -> Invitation:
        """Email an employee a sign-in link that works once, within 7 days."""
        sent = await team.invite_person(info, person_id)
        return Invitation(
            id=strawberry.ID(str(sent.invitation_id)),
            person_id=strawberry.ID(str(sent.person_id)),
            expires_at=sent.expires_at,
            delivery_id=strawberry.ID(str(sent.delivery_id)),
        )

    @strawberry.mutation
    async def redeem_invitation(self, info: Info, secret: str) -> NewApiToken:
        """Exchange an invitation link's secret for a new token (no sign-in needed)."""
        row, token = await team.redeem_invitation(info, secret)
        return NewApiToken(token=ApiToken.from_row(row), secret=token)

    @strawberry.mutation
    async def mark_all_read(self, info: Info) -> int:
        """Mark every unread in-app notification of yours read; how many were."""
        return await notifications.mark_all_read(info)

    @strawberry.mutation
    async def delete_person(self, info: Info, id: strawberry.ID) -> bool:
        """Erase a person: their addresses are replaced in their deliveries by a
        placeholder, and nothing else of theirs remains (OWNER or ADMIN)."""
        return await team.delete_person(info, id)

    @strawberry.mutation
    async def update_task(self, info: Info, id: strawberry.ID, input: UpdateTaskInput) -> Task:
        for name in ("title", "closed"):
            not_null(name, getattr(input, name))
        task_id = await task_changes.update_task(
            info, id, title=_given(input.title), closed=_given(input.closed)
        )
        return Task(row=await queries.fresh_task(info, task_id))

    @strawberry.mutation
    async def add_subscribers(
        self, info: Info, task_id: strawberry.ID, person_ids: list[strawberry.ID]
    ) -> Task:
        changed = await task_changes.change_subscribers(info, task_id, person_ids, add=True)
        return Task(row=await queries.fresh_task(info, changed))

    @strawberry.mutation
    async def remove_subscribers(
        self, info: Info, task_id: strawberry.ID, person_ids: list[strawberry.ID]
    ) -> Task:
        changed = await task_changes.change_subscribers(info, task_id, person_ids, add=False)
        return Task(row=await queries.fresh_task(info, changed))


@strawberry.type
class TeamSubscription:
    @strawberry.subscription
    async def unread_count(self, info: Info) -> AsyncGenerator[int, None]:
        """Your unread in-app notifications: the count now, then each change."""
        async for count in notifications.unread_counts(info):
            yield count
