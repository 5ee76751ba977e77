"""What one email says and where it comes from: content, pixel link, VERP sender."""

from __future__ import annotations

from collections.abc import Sequence

from channels.base import Notice
from channels.email.mime import OutgoingEmail, render_notification
from channels.email.verp import return_path
from common.domain import NotificationKind
from common.settings import Settings
from common.tokens import PIXEL, sign
from db.deliveries import SendBatch
from db.tasks import NotificationContent
from sending.invitation_email import invitation_email


def pixel_url(settings: Settings, pixel_id: str) -> str:
    return f"{settings.public_base_url}/p/{sign(pixel_id, settings.secret_key, PIXEL)}.gif"


def envelope_sender(settings: Settings, message_key: str) -> str:
    """A VERP return path, `bounces+<token>@BOUNCE_DOMAIN`: a bounce that comes back to it
    names the message it is about, and the token's MAC proves we sent it."""
    return return_path(message_key, settings.secret_key, settings.bounce_domain)


def compose_email(
    settings: Settings,
    batch: SendBatch,
    content: NotificationContent,
    recipients: Sequence[str],
) -> OutgoingEmail:
    """The message as every addressee sees it (To: lists them all), sent this time to
    `recipients` only (on a retry, the ones still pending)."""
    message = batch.message
    if batch.notification.kind == NotificationKind.INVITATION.value:
        subject, text, html = invitation_email(settings, batch.notification)
    else:
        subject, text, html = render_notification(
            content.task_title,
            content.comment_body,
            content.author_name,
            pixel_url(settings, message.pixel_id) if message.pixel_id else None,
            content.kind,
        )
    return OutgoingEmail(
        message_id=message.header_message_id,
        from_header=settings.mail_from,
        envelope_from=envelope_sender(settings, message.id.hex),
        to=tuple(dict.fromkeys(row.address for row in batch.all_deliveries)),
        recipients=tuple(recipients),
        subject=subject,
        text=text,
        html=html,
    )


def compose_notice(batch: SendBatch, content: NotificationContent, address: str) -> Notice:
    """The same notification for a messenger: plain text, plus the structured event a
    webhook receiver can act on."""
    subject, text, _ = render_notification(
        content.task_title, content.comment_body, content.author_name, None, content.kind
    )
    notification = batch.notification
    return Notice(
        message_key=batch.message.id.hex,
        address=address,
        subject=subject,
        text=text,
        data={
            "type": "comment.added" if notification.comment_id else "task.created",
            "task": {"id": str(notification.task_id), "title": content.task_title},
            "comment": None
            if notification.comment_id is None
            else {
                "id": str(notification.comment_id),
                "body": content.comment_body,
                "author": content.author_name,
            },
        },
    )
