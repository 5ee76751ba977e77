"""The email as it goes on the wire: the notification's subject, text and HTML, and the
multipart/alternative MIME message that carries them."""

from __future__ import annotations

import binascii
import functools
import html
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime

from common.domain import NoticeKind
from common.text import CONTROL_CHARACTERS
from common.time import utcnow

# Never part of an address, and a NUL or a line break makes aiosmtplib raise.
_CONTROL = CONTROL_CHARACTERS


@dataclass(frozen=True)
class OutgoingEmail:
    # A full header value such as "<abc@beacon>", the same on every attempt so that a
    # duplicate delivery (at-least-once sending) can be recognised.
    message_id: str
    from_header: str
    envelope_from: str
    to: tuple[str, ...]
    # The RCPT TO list: a subset of `to`; on a retry only the still-pending addresses.
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """The message as the email package sees it (what `render_mime` puts on the wire)."""
    parsed = message_from_bytes(render_mime(email), _class=EmailMessage, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def render_mime(email: OutgoingEmail, *, utf8: bool = False) -> bytes:
    """The message as sent: multipart/alternative, text and HTML in UTF-8.

    Written directly rather than through `EmailMessage`, whose header parsing and
    generator cost more CPU than the rest of a send. What the email package does well
    (RFC 2047 words, folding) it still does for the headers that need it: From and
    Subject (cached, as they repeat), and any To or Message-ID that is not plain
    ASCII. `utf8`: the server takes SMTPUTF8, so addresses may stay in UTF-8.
    """
    text = _text_part("plain", email.text)
    html = _encoded_part("html", email.html)
    boundary = _boundary(text, html)
    # An address with a control character is never sent to (`_sendable`), and would
    # break the header for every other addressee: it is left out.
    to = [address for address in email.to if not _CONTROL.search(address)]
    head = b"".join(
        (
            _header("From", email.from_header, utf8),
            _address_list("To", to, utf8) if to else b"",
            _header("Subject", email.subject, utf8),
            b"Date: " + format_datetime(utcnow(), usegmt=True).encode() + _CRLF,
            _message_id(email.message_id, utf8),
            # RFC 3834: tells autoresponders (vacation replies) not to answer notifications.
            b"Auto-Submitted: auto-generated\r\n",
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n',
        )
    )
    # The line break before a delimiter belongs to the delimiter (RFC 2046).
    delimiter = b"\r\n--" + boundary
    return b"".join((head, delimiter, _CRLF, text, delimiter, _CRLF, html, delimiter, b"--\r\n"))


_CRLF = b"\r\n"
# An address that needs no quoting, encoding or folding of its own.
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\Z")
_PLAIN_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,900}>\Z")


@functools.lru_cache(maxsize=256)
def _header(name: str, value: str, utf8: bool) -> bytes:
    """One header as the email package writes it (encoded words where needed, folded)."""
    chosen = policy.SMTPUTF8 if utf8 else policy.SMTP
    folded: str = chosen.header_factory(name, value).fold(policy=chosen)
    return folded.encode("utf-8" if utf8 else "ascii")


def _address_list(name: str, addresses: Sequence[str], utf8: bool) -> bytes:
    if not all(PLAIN_ADDRESS.match(address) for address in addresses):
        return _header(name, ", ".join(addresses), utf8)
    # Folded between addresses, as the email package would.
    lines: list[str] = []
    line = f"{name}:"
    for i, address in enumerate(addresses):
        item = f" {address}" + ("," if i < len(addresses) - 1 else "")
        if len(line) + len(item) > 78 and line != f"{name}:":
            lines.append(line)
            line = ""
        line += item
    lines.append(line)
    return "\r\n".join(lines).encode() + _CRLF


def _message_id(value: str, utf8: bool) -> bytes:
    if _PLAIN_MESSAGE_ID.match(value):
        return b"Message-ID: " + value.encode() + _CRLF
    return _header("Message-ID", value, utf8)


def _encoded_part(subtype: str, content: str) -> bytes:
    """A text/<subtype> part in UTF-8: 7bit when it is short-lined ASCII (readable as
    is), quoted-printable otherwise (never 8bit: any server takes it)."""
    lines = content.encode("utf-8").splitlines()
    if all(len(line) <= 78 for line in lines) and all(line.isascii() for line in lines):
        encoding, body = b"7bit", b"\r\n".join(lines) + _CRLF
    else:
        encoding = b"quoted-printable"
        body = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True).replace(b"\n", _CRLF)
    return (
        b"Content-Type: text/" + subtype.encode() + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body
    )


# The text part is the same in every message of a notification.
_text_part = functools.lru_cache(maxsize=64)(_encoded_part)


def _boundary(*parts: bytes) -> bytes:
    while True:
        boundary = b"==beacon-" + secrets.token_hex(16).encode()
        if not any(boundary in part for part in parts):
            return boundary


# What each kind of notification says first: the subject (before the task's title) and
# the opening of the text (with the author's name, where there is one).
_SUBJECTS = {
    NoticeKind.NEW_TASK: "New task: ",
    NoticeKind.NEW_COMMENT: "New comment on ",
    NoticeKind.SYSTEM_COMMENT: "Automated comment on ",
    NoticeKind.SCENARIO_MESSAGE: "Message about ",
}


def _opening(kind: NoticeKind, author_name: str | None) -> str:
    """The sentence before the task's title: "Ann commented on", "A message about"."""
    if kind is NoticeKind.NEW_TASK:
        return f"{author_name} created a new task" if author_name else "A new task was created"
    if kind is NoticeKind.SYSTEM_COMMENT:
        return "An automation commented on"
    if kind is NoticeKind.SCENARIO_MESSAGE:
        return "A message about the task"
    return f"{author_name or 'Someone'} commented on"


_STYLE = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5"


def html_document(subject: str, body: str) -> str:
    """Every HTML email Beacon sends: `body` (HTML) under the subject as its title."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title>\n"
        f'<div style="{_STYLE}">\n{body}\n</div>'
    )


def render_notification(
    task_title: str,
    comment_body: str | None,
    author_name: str | None,
    pixel_url: str | None,
    kind: NoticeKind | None = None,
) -> tuple[str, str, str]:
    """(subject, text, html) for a notification; `kind` says what happened (by default:
    a new task without a comment body, else a person's comment)."""
    if kind is None:
        kind = NoticeKind.NEW_TASK if comment_body is None else NoticeKind.NEW_COMMENT
    # Header values cannot contain line breaks; a title typed with one must still send.
    title_line = " ".join(task_title.split())
    title = html.escape(task_title)
    subject = f"[Beacon] {_SUBJECTS[kind]}{title_line}"
    opening = _opening(kind, author_name)
    if kind is NoticeKind.NEW_TASK or comment_body is None:
        text = f"{opening}: {task_title}\n"
        body = f"<p>{html.escape(opening)}: <strong>{title}</strong></p>"
    else:
        text = f"{opening} {task_title}:\n\n{comment_body}\n"
        lead = html.escape(opening)
        if kind is NoticeKind.NEW_COMMENT:  # the author's name stands out
            lead = f"<strong>{html.escape(author_name or 'Someone')}</strong> commented on"
        body = (
            f"<p>{lead} <strong>{title}</strong>:</p>\n"
            f'<div style="white-space:pre-wrap">{html.escape(comment_body)}</div>'
        )
    document = html_document(subject, body)
    if pixel_url is not None:
        # Last in the body so that it loads only once the message has been displayed.
        document += (
            f'\n<img src="{html.escape(pixel_url)}" width="1" height="1" alt=""'
            ' style="display:block;border:0">'
        )
    return subject, text, document
