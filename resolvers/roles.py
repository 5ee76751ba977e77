"""The role checks resolvers make before they write (rules in domain/roles.py)."""

from __future__ import annotations

import uuid

from common.domain import PersonKind
from db.accounts import Viewer
from domain.roles import Role, manages_account, needed_role
from resolvers.context import Info
from resolvers.errors import forbidden, not_found


def viewer_role(viewer: Viewer) -> Role | None:
    return Role(viewer.role) if viewer.role else None


def require_manager(info: Info, action: str) -> Viewer:
    """The viewer, if they are an OWNER or ADMIN; FORBIDDEN naming the role otherwise."""
    viewer = info.context.require_viewer()
    role = viewer_role(viewer)
    if not manages_account(role):
        raise forbidden(f"{needed_role(action)} You are {role or 'not an employee'}.")
    return viewer


async def may_edit_person(info: Info, person_id: uuid.UUID) -> None:
    """Anyone edits contacts and themselves; other employees are the managers' to edit."""
    viewer = info.context.require_viewer()
    person = await info.context.loaders.person.load(person_id)
    if person is not None and person.erased_at is not None:
        raise not_found("person")
    if (
        person is not None
        and person.kind == PersonKind.EMPLOYEE.value
        and person.id != viewer.person_id
    ):
        require_manager(info, "Changing another employee")
