"""GraphQL object types (DESIGN.md section 5). Built from database rows; every list
below a field goes through a DataLoader in resolvers/."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

import strawberry

from channels.email.sender import masked_relay
from common import domain
from common.cursors import encode_cursor
from db.records import (
    AccountRecord,
    BounceRecord,
    CommentRecord,
    DeliveryRow,
    PersonRecord,
    ScenarioRecord,
    StatusCount,
    SuppressionRecord,
    TaskRecord,
)
from domain.roles import Role
from live.updates import SharedResults
from resolvers import notifications, queries
from resolvers.context import Info

# The domain's enums are the GraphQL enums: registered here, used as they are.
for _enum in (
    domain.DeliveryState,
    domain.Channel,
    domain.Plan,
    domain.PersonKind,
    domain.ReadConfidence,
    domain.TrackingConsent,
    domain.ScenarioTrigger,
    domain.ScenarioAction,
    Role,
):
    strawberry.enum(_enum)

if TYPE_CHECKING:
    from schema.notifications import NotificationConnection

N = TypeVar("N")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = strawberry.field(
        default=False,
        description="Whether there are items before this page; told when paging backwards "
        "(last, before), false when paging forwards.",
    )
    start_cursor: str | None = None


@strawberry.type
class Edge(Generic[N]):
    node: N
    cursor: str


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


@strawberry.type
class Account:
    id: strawberry.ID
    name: str
    plan: domain.Plan
    open_tracking: bool
    show_all_recipients: bool
    smtp_relay: str | None = strawberry.field(
        description="The account's own SMTP server, or null for the system's relay. A "
        "password in the URL is write-only: it is shown as ******** (send the URL back "
        "with ******** to keep it)."
    )
    require_tracking_consent: bool
    count_machine_opens: bool

    @classmethod
    def from_row(cls, row: AccountRecord) -> Account:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            plan=domain.Plan(row.plan),
            open_tracking=row.open_tracking,
            show_all_recipients=row.show_all_recipients,
            smtp_relay=masked_relay(row.smtp_relay),
            require_tracking_consent=row.require_tracking_consent,
            count_machine_opens=row.count_machine_opens,
        )

    @strawberry.field
    def history_days(self, info: Info) -> int | None:
        """Days of delivery history the plan shows; null on FREE (no tracking)."""
        return info.context.services.settings.history_days(domain.Plan(self.plan))

    @strawberry.field
    async def configured_channels(self, info: Info) -> list[domain.Channel]:
        """The channels this account can send on; provider channels need credentials."""
        return sorted(await queries.account_channels(info), key=list(domain.Channel).index)


@strawberry.type
class Person:
    id: strawberry.ID
    kind: domain.PersonKind
    name: str
    email: str | None
    telegram_chat_id: str | None
    phone: str | None
    webhook_url: str | None
    disabled_channels: list[domain.Channel]
    tracking_consent: domain.TrackingConsent
    role: Role | None = strawberry.field(
        default=None, description="An employee's role in the account; null for a contact."
    )

    @classmethod
    def from_row(cls, row: PersonRecord) -> Person:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=domain.PersonKind(row.kind),
            name=row.name,
            email=row.email,
            telegram_chat_id=row.telegram_chat_id,
            phone=row.phone,
            webhook_url=row.webhook_url,
            disabled_channels=[domain.Channel(name) for name in row.disabled_channels or ()],
            tracking_consent=domain.TrackingConsent(row.tracking_consent),
            role=Role(row.role) if row.role else None,
        )

    @strawberry.field
    async def notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        unread_only: bool = False,
    ) -> Annotated[NotificationConnection, strawberry.lazy("schema.notifications")]:
        """Your in-app notifications, newest first (only on `viewer`)."""
        from schema.notifications import person_notifications

        return await person_notifications(info, self.id, first, after, unread_only)

    @strawberry.field
    async def unread_count(self, info: Info) -> int:
        """How many of your in-app notifications are unread (only on `viewer`)."""
        return await notifications.unread_count(info, self.id)


@strawberry.type
class DeliveryError:
    code: str
    message: str
    permanent: bool


@strawberry.type
class DeliveryEvent:
    type: str
    at: dt.datetime
    detail: str | None


def _held_until(root: Delivery) -> dt.datetime | None:
    if root.row.state != domain.DeliveryState.QUEUED.value:
        return None  # a hold is written only on queued deliveries, and matters only there
    return root.row.held_until


async def _suppression(root: Delivery, info: Info) -> Suppression | None:
    row = await queries.suppression(info, root.row.channel, root.row.address)
    return Suppression.from_row(row) if row is not None else None


def _task_id(root: Delivery) -> strawberry.ID | None:
    return id_of(root.row.task_id)


def _comment_id(root: Delivery) -> strawberry.ID | None:
    return id_of(root.row.comment_id)


@strawberry.type
class Delivery:
    row: strawberry.Private[DeliveryRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    task_id: strawberry.ID | None = strawberry.field(
        resolver=_task_id,
        description="The task whose notification this is; null for an invitation's email.",
    )
    comment_id: strawberry.ID | None = strawberry.field(
        resolver=_comment_id, description="The comment it notified of; null for the task's own."
    )

    @strawberry.field
    async def recipient(self, info: Info) -> Person:
        person = await info.context.loaders.person.load(self.row.recipient_id)
        assert person is not None, "a delivery's recipient is in its account"
        return Person.from_row(person)

    @strawberry.field
    def channel(self) -> domain.Channel:
        return domain.Channel(self.row.channel)

    @strawberry.field
    def address(self) -> str:
        return self.row.address

    @strawberry.field
    def state(self) -> domain.DeliveryState:
        return domain.DeliveryState(self.row.state)

    @strawberry.field
    def attempts(self) -> int:
        return self.row.attempts

    @strawberry.field
    def queued_at(self) -> dt.datetime:
        return self.row.queued_at

    @strawberry.field
    def sent_at(self) -> dt.datetime | None:
        return self.row.sent_at

    @strawberry.field
    def failed_at(self) -> dt.datetime | None:
        return self.row.failed_at

    @strawberry.field
    def delivered_at(self) -> dt.datetime | None:
        return self.row.delivered_at

    @strawberry.field
    def read_at(self) -> dt.datetime | None:
        return self.row.read_at

    @strawberry.field
    def open_count(self) -> int:
        return self.row.open_count

    @strawberry.field
    def read_confidence(self) -> domain.ReadConfidence | None:
        value = self.row.read_confidence
        return domain.ReadConfidence(value) if value else None

    @strawberry.field
    def provider_message_id(self) -> str | None:
        return self.row.provider_message_id

    @strawberry.field
    def accepted_by(self) -> str | None:
        return self.row.accepted_by

    @strawberry.field
    def error(self) -> DeliveryError | None:
        if self.row.error_code is None:
            return None
        return DeliveryError(
            code=self.row.error_code,
            message=self.row.error_message or "",
            permanent=bool(self.row.error_permanent),
        )

    @strawberry.field
    async def events(self, info: Info) -> list[DeliveryEvent]:
        rows = await info.context.loaders.events.load(self.row.id)
        return [DeliveryEvent(type=row.type, at=row.at, detail=row.detail) for row in rows]

    held_until: dt.datetime | None = strawberry.field(
        resolver=_held_until,
        description="While QUEUED: the recipient rate limit holds it back until then "
        "(RECIPIENT_RATE_LIMIT emails per address per window); null otherwise.",
    )
    suppression: Suppression | None = strawberry.field(
        resolver=_suppression,
        description="The suppression list's entry for this address and channel, if it is "
        "on the list: nothing is sent to it (a resend is refused) until it is lifted.",
    )


RowsLoader = Callable[[], Awaitable[Sequence[DeliveryRow]]]


@strawberry.type
class DeliveryStatus:
    state: domain.DeliveryState
    total: int
    queued: int
    sent: int
    failed: int
    read: int
    held_back: int = strawberry.field(
        description="Of `queued`, how many the recipient rate limit holds back "
        "(see `Delivery.heldUntil`)."
    )
    held_until: dt.datetime | None = strawberry.field(
        description="When the first of those held back may be sent; null when none is."
    )
    # Read only when `deliveries` is asked for: an icon needs only the counts.
    rows: strawberry.Private[RowsLoader]

    @strawberry.field
    async def deliveries(self) -> list[Delivery]:
        return [Delivery(row=row) for row in await self.rows()]

    @classmethod
    def from_rows(cls, rows: Sequence[DeliveryRow] | None) -> DeliveryStatus | None:
        """The status of these deliveries."""
        if rows is None:
            return None
        queued = domain.DeliveryState.QUEUED.value
        held = [row.held_until for row in rows if row.state == queued and row.held_until]

        async def known() -> Sequence[DeliveryRow]:
            return rows

        return cls._of(
            domain.summarize(domain.DeliveryState(row.state) for row in rows),
            len(held),
            min(held, default=None),
            known,
        )

    @classmethod
    def from_counts(
        cls, counts: list[StatusCount] | None, rows: RowsLoader
    ) -> DeliveryStatus | None:
        """The status from counts by state (db.deliveries.status_counts_by_task); its
        deliveries are read by `rows` if asked for."""
        if counts is None:
            return None
        by_state: Counter[domain.DeliveryState] = Counter()
        held, held_until = 0, list[dt.datetime]()
        for row in counts:
            by_state[domain.DeliveryState(row.state)] += row.deliveries
            # `held` counts the non-null hold times, so `held_until` is set when it is.
            if row.state == domain.DeliveryState.QUEUED.value and row.held and row.held_until:
                held += row.held
                held_until.append(row.held_until)
        return cls._of(domain.summarize_counts(by_state), held, min(held_until, default=None), rows)

    @classmethod
    def _of(
        cls,
        summary: domain.StatusSummary | None,
        held_back: int,
        held_until: dt.datetime | None,
        rows: RowsLoader,
    ) -> DeliveryStatus | None:
        if summary is None:
            return None
        return cls(
            state=summary.state,
            total=summary.total,
            queued=summary.queued,
            sent=summary.sent,
            failed=summary.failed,
            read=summary.read,
            held_back=held_back,
            held_until=held_until,
            rows=rows,
        )


async def overall_status(
    info: Info, task_id: uuid.UUID, include_system: bool
) -> DeliveryStatus | None:
    """A task's icon over its own notification and its comments'."""
    return DeliveryStatus.from_counts(
        await queries.task_status_counts(info, task_id, include_system),
        lambda: queries.all_task_deliveries(info, task_id, include_system),
    )


_OVERALL = (
    "The icon over the task's own notification and all its comments' (system comments "
    "only with `includeSystem`, as in `comments`): the worst state by the same rule as "
    "each item's icon, with the counts summed. Null without deliveries or tracking."
)


async def _task_overall_status(
    root: Task, info: Info, include_system: bool = False
) -> DeliveryStatus | None:
    return await overall_status(info, root.row.id, include_system)


async def _update_task_status(
    root: DeliveryUpdate, info: Info, include_system: bool = False
) -> DeliveryStatus | None:
    return await overall_status(info, uuid.UUID(root.task_id), include_system)


@strawberry.type
class Task:
    row: strawberry.Private[TaskRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def title(self) -> str:
        return self.row.title

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    async def subscribers(self, info: Info) -> list[Person]:
        return [Person.from_row(row) for row in await queries.subscribers(info, self.row.id)]

    @strawberry.field
    async def created_by(self, info: Info) -> Person | None:
        """Who created the task: the person signed in then."""
        if self.row.created_by is None:
            return None
        row = await info.context.loaders.person.load(self.row.created_by)
        return Person.from_row(row) if row is not None else None

    @strawberry.field
    def closed_at(self) -> dt.datetime | None:
        """When the task was closed (updateTask); null while it is open."""
        return self.row.closed_at

    @strawberry.field
    async def delivery_status(self, info: Info) -> DeliveryStatus | None:
        """The icon of the task's own notification (its creation)."""
        return DeliveryStatus.from_rows(await queries.task_deliveries(info, self.row.id))

    overall_status: DeliveryStatus | None = strawberry.field(
        resolver=_task_overall_status, description=_OVERALL
    )

    @strawberry.field
    async def comments(
        self,
        info: Info,
        include_system: bool = False,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Comment]:
        """Oldest first. `first`/`after` pages forwards from the oldest; `last`/`before`
        backwards from the newest (a feed that shows its newest comments)."""
        page = await queries.comments_page(
            info, self.row.id, include_system, first, after, last, before
        )
        return _connection(page.rows, page.has_next, Comment, page.has_previous)


@strawberry.type
class Comment:
    row: strawberry.Private[CommentRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    async def task(self, info: Info) -> Task:
        row = await info.context.loaders.task.load(self.row.task_id)
        assert row is not None, "a comment's task is in its account"
        return Task(row=row)

    @strawberry.field
    async def author(self, info: Info) -> Person | None:
        if self.row.author_id is None:
            return None
        row = await info.context.loaders.person.load(self.row.author_id)
        return Person.from_row(row) if row is not None else None

    @strawberry.field
    def body(self) -> str:
        return str(self.row.body)

    @strawberry.field
    def is_system(self) -> bool:
        return bool(self.row.is_system)

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    async def delivery_status(self, info: Info) -> DeliveryStatus | None:
        return DeliveryStatus.from_rows(await queries.comment_deliveries(info, self.row.id))


@strawberry.type(description="An inbound bounce, auto-reply or complaint, kept as received.")
class Bounce:
    id: strawberry.ID
    received_at: dt.datetime
    parsed: bool
    summary: str
    delivery_id: strawberry.ID | None

    @classmethod
    def from_row(cls, row: BounceRecord) -> Bounce:
        return cls(
            id=strawberry.ID(str(row.id)),
            received_at=row.received_at,
            parsed=row.parsed,
            summary=row.summary,
            delivery_id=id_of(row.delivery_id),
        )


@strawberry.type
class Scenario:
    id: strawberry.ID
    name: str
    trigger: domain.ScenarioTrigger
    keyword: str | None
    action: domain.ScenarioAction
    person_id: strawberry.ID | None
    template: str

    @classmethod
    def from_row(cls, row: ScenarioRecord) -> Scenario:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            trigger=domain.ScenarioTrigger(row.trigger),
            keyword=row.keyword,
            action=domain.ScenarioAction(row.action),
            person_id=id_of(row.person_id),
            template=row.template,
        )


@strawberry.type
class Suppression:
    channel: domain.Channel
    address: str
    reason: str
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: SuppressionRecord) -> Suppression:
        return cls(
            channel=domain.Channel(row.channel),
            address=row.address,
            reason=row.reason,
            created_at=row.created_at,
        )


@strawberry.type
class DeliveryUpdate:
    delivery: Delivery
    task_id: strawberry.ID
    comment_id: strawberry.ID | None
    status: DeliveryStatus
    cursor: str = strawberry.field(
        description="Pass as `after` when subscribing again to receive what came after "
        "this update first, then the live stream: nothing lost, nothing twice."
    )
    # The same object goes to every subscriber of the account on this node; the
    # selection is executed once per update (see live/feed.py).
    shared: strawberry.Private[SharedResults | None] = None

    task_status: DeliveryStatus | None = strawberry.field(
        resolver=_update_task_status,
        description="The task's `overallStatus` after this update. " + _OVERALL,
    )


def _connection(
    rows: Sequence[TaskRecord] | Sequence[CommentRecord],
    has_next: bool,
    node_type: Callable[..., N],
    has_previous: bool = False,
) -> Connection[N]:
    edges = [
        Edge(node=node_type(row=row), cursor=encode_cursor(row.created_at, row.id)) for row in rows
    ]
    return connection_of(edges, has_next, has_previous)


def connection_of(
    edges: list[Edge[N]], has_next: bool, has_previous: bool = False
) -> Connection[N]:
    """A page of edges, with its PageInfo."""
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
        ),
    )


def task_connection(rows: Sequence[TaskRecord], has_next: bool) -> Connection[Task]:
    return _connection(rows, has_next, Task)


def id_of(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None
