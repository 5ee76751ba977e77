"""The email that invites an employee to sign in (invitePerson): a single-use link to
the dashboard, whose secret is re-derived here from the invitation's id (only its hash
is stored; ADR 0020)."""

from __future__ import annotations

import html
import uuid

from channels.email.mime import html_document
from common.settings import Settings
from common.tokens import INVITATION_LIFETIME, invitation_secret
from db.records import NotificationRecord

SUBJECT = "[Beacon] You are invited to sign in"


def invitation_link(settings: Settings, invitation_id: uuid.UUID) -> str:
    """The dashboard's invitation page. The secret is in the fragment, which browsers
    never send: no server or proxy log sees it, and fetching the page uses nothing up
    (redeeming is a POST the page makes when the person accepts)."""
    secret = invitation_secret(invitation_id, settings.secret_key)
    return f"{settings.public_base_url}/#/invitation/{secret}"


def invitation_email(settings: Settings, notification: NotificationRecord) -> tuple[str, str, str]:
    """(subject, text, html) of the invitation this notification sends."""
    intro = notification.message_text or "You are invited to Beacon."
    if notification.invitation_id is None:  # the invitation went with its person
        text = f"{intro}\n\nThis invitation was withdrawn.\n"
        return SUBJECT, text, f"<p>{html.escape(intro)}</p><p>This invitation was withdrawn.</p>"
    link = invitation_link(settings, notification.invitation_id)
    how = (
        f"Open this link within {INVITATION_LIFETIME.days} days to get your own sign-in "
        "token. It works once:"
    )
    text = f"{intro}\n\n{how}\n{link}\n"
    document = html_document(
        SUBJECT,
        f"<p>{html.escape(intro)}</p>\n<p>{html.escape(how)}</p>\n"
        f'<p><a href="{html.escape(link)}">Accept the invitation</a></p>',
    )
    return SUBJECT, text, document
