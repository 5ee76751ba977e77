"""The team: API tokens per person, and people's roles (rules in domain/roles.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

from broadcast.facade import publish_changes
from common.domain import Channel, NotificationKind, PersonKind
from common.time import utcnow
from common.tokens import INVITATION, INVITATION_LIFETIME, invitation_secret, verify
from db import api_tokens as db_api_tokens
from db import invitations as db_invitations
from db import people as db_people
from db.accounts import Viewer
from db.erasure import erase_person
from db.records import ApiTokenRecord, PersonRecord
from domain.notifications import enqueue_notification
from domain.recipients import message_id_domain
from domain.roles import Role, manages_account, may_change_role, may_manage_tokens_of, needed_role
from domain.validation import validate_token_name
from live.token_sockets import publish_revoked
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, forbidden, not_found
from resolvers.roles import require_manager, viewer_role


def _tokens_allowed(info: Info, person_id: uuid.UUID, action: str) -> None:
    viewer = info.context.require_viewer()
    own = person_id == viewer.person_id
    if not may_manage_tokens_of(viewer_role(viewer), own=own):
        raise forbidden(
            f"{needed_role(action + ' of another person')} "
            f"You are {viewer.role or 'not an employee'}; you manage your own tokens."
        )


async def employee(info: Info, person_id: str) -> PersonRecord:
    """A person of the viewer's account who can sign in."""
    parsed = parse_id(person_id, "person")
    person = await info.context.loaders.person.load(parsed)
    if person is None or person.erased_at is not None:
        raise not_found("person")
    if person.kind != PersonKind.EMPLOYEE.value:
        raise bad_input("Only an EMPLOYEE signs in; this person is a CONTACT.", field="personId")
    return person


async def token_holder(info: Info, person_id: str) -> PersonRecord:
    person = await info.context.loaders.person.load(parse_id(person_id, "person"))
    assert person is not None, "a token goes with its person"
    return person


async def create_api_token(info: Info, person_id: str, name: str) -> tuple[ApiTokenRecord, str]:
    viewer = info.context.require_viewer()
    name = validate_token_name(name)
    person = await employee(info, person_id)
    _tokens_allowed(info, person.id, "Creating a token")
    async with info.context.db.write() as conn:
        return await db_api_tokens.create_token(
            conn, account_id=viewer.account_id, person_id=person.id, name=name, now=utcnow()
        )


async def api_tokens(info: Info, person_id: str | None) -> list[ApiTokenRecord]:
    """A manager sees every token of the account (or one person's); anyone else their own."""
    viewer = info.context.require_viewer()
    wanted = parse_id(person_id, "person") if person_id is not None else None
    if wanted is None and not manages_account(viewer_role(viewer)):
        wanted = viewer.person_id
    if wanted is not None:
        _tokens_allowed(info, wanted, "Listing the tokens")
    async with info.context.db.read() as conn:
        return await db_api_tokens.list_tokens(conn, viewer.account_id, wanted)


async def revoke_api_token(info: Info, token_id: str) -> ApiTokenRecord:
    viewer = info.context.require_viewer()
    parsed = parse_id(token_id, "token")
    async with info.context.db.write() as conn:
        token = await db_api_tokens.get_token(conn, viewer.account_id, parsed)
        if token is None:
            raise not_found("API token")
        _tokens_allowed(info, token.person_id, "Revoking a token")
        revoked = await db_api_tokens.revoke(conn, viewer.account_id, parsed, utcnow())
    assert revoked is not None
    await publish_revoked(info.context.services.broadcast, parsed)
    return revoked


async def set_role(info: Info, person_id: str, role: Role) -> PersonRecord:
    viewer = require_manager(info, "Changing a person's role")
    person = await employee(info, person_id)
    current = Role(person.role) if person.role else Role.MEMBER
    if not may_change_role(viewer_role(viewer), current, role):
        raise forbidden(
            f"{needed_role('Giving or taking the OWNER role', owner_only=True)} "
            f"You are {viewer.role}."
        )
    async with info.context.db.write() as conn:
        if current is Role.OWNER and role is not Role.OWNER:
            await _keep_an_owner(conn, viewer.account_id, person.id)
        row = await db_people.set_role(conn, viewer.account_id, person.id, role.value)
    info.context.reset_loaders()
    return row


async def _keep_an_owner(conn: Any, account_id: uuid.UUID, leaving: uuid.UUID) -> None:
    """Refuse to leave the account without an OWNER (the owners' rows are locked, so two
    owners demoting each other at once cannot both succeed)."""
    others = [owner for owner in await db_people.lock_owners(conn, account_id) if owner != leaving]
    if not others:
        raise forbidden(
            "An account always keeps at least one OWNER: make another person OWNER first."
        )


async def delete_person(info: Info, person_id: str) -> bool:
    """Erase a person of the account (db/erasure.py); their websockets close."""
    viewer = require_manager(info, "Deleting a person")
    parsed = parse_id(person_id, "person")
    async with info.context.db.write() as conn:
        person = await db_people.get_person(conn, viewer.account_id, parsed)
        if person is None or person.erased_at is not None:
            raise not_found("person")
        if person.role == Role.OWNER.value:
            await _keep_an_owner(conn, viewer.account_id, parsed)
        token_ids = await erase_person(conn, person, utcnow())
    for token_id in token_ids:
        await publish_revoked(info.context.services.broadcast, token_id)
    info.context.reset_loaders()
    return True


@dataclass(frozen=True)
class SentInvitation:
    invitation_id: uuid.UUID
    person_id: uuid.UUID
    expires_at: dt.datetime
    delivery_id: uuid.UUID


async def invite_person(info: Info, person_id: str) -> SentInvitation:
    """Email an employee a single-use sign-in link, through the outbox like any
    notification (the delivery is tracked; the email has no pixel)."""
    viewer = require_manager(info, "Inviting a person")
    person = await employee(info, person_id)
    if not person.email:
        raise bad_input("This employee has no email address to send the invitation to.")
    account = await info.context.account()
    inviter = await info.context.loaders.person.load(viewer.person_id)
    settings = info.context.services.settings
    now = utcnow()
    invitation_id = uuid.uuid4()
    async with info.context.db.write() as conn:
        await db_invitations.create_invitation(
            conn,
            invitation_id=invitation_id,
            account_id=viewer.account_id,
            person_id=person.id,
            secret=invitation_secret(invitation_id, settings.secret_key),
            now=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        changes = await enqueue_notification(
            conn,
            account=account,
            task_id=None,
            comment_id=None,
            kind=NotificationKind.INVITATION,
            recipients=[person],
            configured=frozenset({Channel.EMAIL}),
            message_id_domain=message_id_domain(settings.mail_from),
            now=now,
            message_text=f"{inviter.name if inviter else 'Someone'} invited you to "
            f"{account.name} on Beacon.",
            invitation_id=invitation_id,
            pixel=False,
        )
        if not changes:
            # The person switched their email channel off: nothing could be sent.
            raise bad_input("This employee does not receive email (their EMAIL is disabled).")
    info.context.services.wake_worker()
    await publish_changes(info.context.services.broadcast, changes)
    return SentInvitation(
        invitation_id, person.id, now + INVITATION_LIFETIME, changes[0].delivery_id
    )


def invitation_refused() -> GraphQLError:
    return GraphQLError(
        "This invitation link is not valid: it was already used, has expired, or was "
        "withdrawn. Ask for a new invitation.",
        extensions={"code": "INVITATION_INVALID"},
    )


async def redeem_invitation(info: Info, secret: str) -> tuple[ApiTokenRecord, str]:
    """A new token for the invited person, once; signs this request in as them so that
    the answer can show who they are."""
    settings = info.context.services.settings
    invitation_id = verify(secret.strip(), settings.secret_key, INVITATION)
    if invitation_id is None:
        raise invitation_refused()
    now = utcnow()
    async with info.context.db.write() as conn:
        found = await db_invitations.redeem(conn, uuid.UUID(invitation_id), secret.strip(), now)
        if found is None:
            raise invitation_refused()
        row, token = await db_api_tokens.create_token(
            conn,
            account_id=found.account_id,
            person_id=found.person_id,
            name="invitation",
            now=now,
        )
    info.context.viewer = Viewer(
        account_id=found.account_id, person_id=found.person_id, token_id=row.id
    )
    info.context.reset_loaders()
    return row, token
