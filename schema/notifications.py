"""The viewer's in-app notifications as GraphQL types (Person.notifications)."""

from __future__ import annotations

import datetime as dt

import strawberry

from common import domain
from common.cursors import encode_cursor
from db.notifications import text_of
from db.records import InAppNotificationRecord
from db.tasks import Page
from resolvers import notifications
from resolvers.context import Info
from schema.types import PageInfo


@strawberry.type(description="One in-app notification of the signed-in person.")
class Notification:
    id: strawberry.ID = strawberry.field(description="The IN_APP delivery's id (for markRead).")
    state: domain.DeliveryState
    read_at: dt.datetime | None
    created_at: dt.datetime
    task_id: strawberry.ID
    task_title: str
    comment_id: strawberry.ID | None
    text: str

    @classmethod
    def from_row(cls, row: InAppNotificationRecord) -> Notification:
        return cls(
            id=strawberry.ID(str(row.id)),
            state=domain.DeliveryState(row.state),
            read_at=row.read_at,
            created_at=row.created_at,
            task_id=strawberry.ID(str(row.task_id)),
            task_title=row.task_title,
            comment_id=strawberry.ID(str(row.comment_id)) if row.comment_id else None,
            text=text_of(row),
        )


@strawberry.type
class NotificationEdge:
    node: Notification
    cursor: str


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo


def notification_connection(page: Page[InAppNotificationRecord]) -> NotificationConnection:
    edges = [
        NotificationEdge(
            node=Notification.from_row(row), cursor=encode_cursor(row.created_at, row.id)
        )
        for row in page.rows
    ]
    return NotificationConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
        ),
    )


async def person_notifications(
    info: Info, person_id: str, first: int | None, after: str | None, unread_only: bool
) -> NotificationConnection:
    page = await notifications.notifications(info, person_id, first, after, unread_only)
    return notification_connection(page)
