"""Who may do what in an account (ADR 0020).

An employee is OWNER, ADMIN or MEMBER. OWNER and ADMIN manage the account: its
settings, channel credentials, scenarios, suppressions, people and other
people's tokens. A MEMBER reads everything, writes tasks and comments, and manages
their own notifications, addresses and tokens. Only an OWNER makes or unmakes an
OWNER, and an account always keeps at least one.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


# What a new employee starts as (an account's first employee is its OWNER).
NEWCOMER = Role.MEMBER

_MANAGERS = frozenset({Role.OWNER, Role.ADMIN})


def manages_account(role: Role | None) -> bool:
    return role in _MANAGERS


def may_manage_tokens_of(role: Role | None, *, own: bool) -> bool:
    """Everyone manages their own tokens; a manager anyone's."""
    return own or manages_account(role)


def may_change_role(actor: Role | None, current: Role, wanted: Role) -> bool:
    """An ADMIN moves people between ADMIN and MEMBER; OWNER is the OWNER's to give
    or take."""
    if actor is Role.OWNER:
        return True
    return actor is Role.ADMIN and Role.OWNER not in (current, wanted)


def needed_role(action: str, *, owner_only: bool = False) -> str:
    """The FORBIDDEN message: what the action needs, in the caller's words."""
    roles = "the OWNER role" if owner_only else "the OWNER or ADMIN role"
    return f"{action} needs {roles}."
