"""Parse inbound bounce messages: DSNs, non-standard bounces, auto-replies and ARF complaints.

Pure: standard library only, no network, no database, and `parse_bounce` never raises.

What a message becomes (`BounceKind`):

- an RFC 3464 delivery status notification (`multipart/report; report-type=delivery-status`)
  gives one `RecipientStatus` per recipient block: HARD when any recipient failed with a
  5.x.x status (or failed with no code at all), else SOFT (4.x.x, even with
  `Action: failed` after the retries ran out; `Action: delayed`; or only
  delivered/relayed reports). `RecipientStatus.kind` tells each recipient apart;
- the common text bounces (qmail, old Exim, Postfix text, anything mailed by a
  MAILER-DAEMON with an address and an SMTP code) are read with regexes: 5xx is HARD,
  4xx is SOFT;
- an ARF report (`report-type=feedback-report`) with `Feedback-Type: abuse` (or fraud,
  virus) is a COMPLAINT;
- an auto-reply or vacation notice is AUTO_REPLY: it is not a bounce;
- anything else is UNPARSEABLE, with a summary for whoever reviews it.

A DSN or a recognisable bounce wins over auto-reply headers: Postfix, Exim and Gmail all
mark their own bounces `Auto-Submitted: auto-replied`. The VERP token (channels/email/verp.py)
is read from the envelope and headers; whether it is genuine is the caller's question.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import email.utils
import enum
import html
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message

from channels.email.verp import verp_token

__all__ = [
    "BounceKind",
    "BounceReport",
    "RecipientStatus",
    "parse_bounce",
]


class BounceKind(enum.StrEnum):
    HARD = enum.auto()
    SOFT = enum.auto()
    AUTO_REPLY = enum.auto()
    COMPLAINT = enum.auto()
    UNPARSEABLE = enum.auto()


@dataclass(frozen=True)
class RecipientStatus:
    """What the report says about one recipient.

    `status` is the enhanced status code ("5.1.1"). When a DSN has no Status field it is
    taken from the Diagnostic-Code, or derived from its basic SMTP code as "5.0.0" /
    "4.0.0"; a DSN's vague "x.0.0" is refined by a more specific code of the same class
    in the Diagnostic-Code (Exim writes "Status: 5.0.0" for a "550 5.1.1" reply).
    `action` is the DSN Action (failed, delayed, delivered, relayed, expanded), or what a
    text bounce states ("failed" for "permanent error", "delayed" for a warning).
    `diagnostic` is the Diagnostic-Code as given, whitespace collapsed
    ("smtp; 550 5.1.1 <bob@x.test>: ..."), or the error text of a text bounce.
    `remote_mta` is the host name of the Remote-MTA, without its "dns;" type.
    """

    address: str
    status: str | None = None
    action: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None

    @property
    def kind(self) -> BounceKind | None:
        """HARD or SOFT for this recipient alone; None when it neither failed nor waits."""
        return _recipient_kind(self.action, self.status)


@dataclass(frozen=True)
class BounceReport:
    kind: BounceKind
    recipients: tuple[RecipientStatus, ...]
    verp_token: str | None
    original_message_id: str | None  # "<id@host>", as in our Message-ID header
    summary: str  # one human line, e.g. "hard bounce for bob@x.test: 5.1.1 User unknown"


# --- entry point --------------------------------------------------------------------------

_MAX_TEXT = 200_000  # characters of human-readable text examined by the regexes
_MAX_DEPTH = 12  # MIME nesting followed
_MAX_RECIPIENTS = 1000  # recipient blocks read from one DSN


def parse_bounce(
    raw: bytes, *, envelope_to: Sequence[str] = (), verp_local_part: str = "bounces"
) -> BounceReport:
    """Classify one inbound message. Never raises: what cannot be read is UNPARSEABLE.

    `envelope_to` are the SMTP RCPT TO addresses that reached the bounce listener; the
    VERP token comes from them first, then from the To / Delivered-To / X-Original-To
    headers, then from the reported message's envelope sender (an ARF report's
    Original-Mail-From, the returned message's Return-Path).
    """
    try:
        return _printable(_Parser(bytes(raw), envelope_to, verp_local_part).parse())
    except Exception as error:  # a parser bug must not lose the message
        token: str | None = None
        try:
            token = _first_token(envelope_to, verp_local_part)
        except Exception:
            token = None
        return BounceReport(
            BounceKind.UNPARSEABLE,
            (),
            token,
            None,
            f"unparseable: the parser failed ({type(error).__name__})",
        )


def _text(value: str) -> str:
    """Text that encodes as UTF-8: undecodable bytes the email package kept as surrogates
    are decoded as UTF-8 where they are UTF-8, else replaced."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _optional_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _printable(report: BounceReport) -> BounceReport:
    recipients = tuple(
        RecipientStatus(
            address=_text(r.address),
            status=r.status,
            action=_optional_text(r.action),
            diagnostic=_optional_text(r.diagnostic),
            remote_mta=_optional_text(r.remote_mta),
        )
        for r in report.recipients
    )
    return BounceReport(
        report.kind,
        recipients,
        _optional_text(report.verp_token),
        _optional_text(report.original_message_id),
        _text(report.summary),
    )


# --- classification helpers ---------------------------------------------------------------

_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)")
_SMTP_CODE = re.compile(r"(?<![\w.\[/-])([245][0-5]\d)(?=[ -]|$)", re.MULTILINE)
_DONE_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


def _recipient_kind(action: str | None, status: str | None) -> BounceKind | None:
    klass = status[0] if status else None
    if action in _DONE_ACTIONS:
        return None
    if action == "delayed" or klass == "4":
        return BounceKind.SOFT
    if klass == "5" or action == "failed":
        return BounceKind.HARD
    return None


def _find_status(text: str) -> tuple[str | None, int]:
    """The enhanced status in `text`, else one derived from a basic SMTP code; and where."""
    enhanced = _ENHANCED.search(text)
    basic = _SMTP_CODE.search(text)
    if basic is None:
        return (enhanced.group(0), enhanced.start()) if enhanced else (None, -1)
    if enhanced and enhanced.start() < basic.start():
        return enhanced.group(0), enhanced.start()
    # "550 5.1.1 …", or "550 Mailbox unavailable (#5.1.1)": an enhanced code of the same
    # class shortly after the basic one refines it
    if enhanced and enhanced.group(1) == basic.group(1)[0] and enhanced.start() - basic.end() < 200:
        return enhanced.group(0), basic.start()
    return f"{basic.group(1)[0]}.0.0", basic.start()


def _refine(status: str | None, diagnostic: str | None) -> str | None:
    """The Status field, or what the diagnostic says when the field is absent or x.0.0."""
    found, _ = _find_status(diagnostic or "")
    if status is None:
        return found
    if found and status.endswith(".0.0") and found[0] == status[0] and found != status:
        return found
    return status


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _clean_msgid(value: str | None) -> str | None:
    if not value:
        return None
    found = re.search(r"<[^<>\s]+>", value)
    if found:
        return found.group(0)
    bare = value.strip()
    if bare and not any(char.isspace() for char in bare) and "@" in bare:
        return f"<{bare}>"
    return None


# starts only after a delimiter, so that a long run without "@" is scanned once (no O(n²))
_ADDRESS = re.compile(
    r"(?<![^\s<>()\[\],;:\"'])[^\s<>()\[\],;:\"'@]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+"
)


def _clean_address(value: str | None) -> str | None:
    """`rfc822; <Bob@x.test>` → `Bob@x.test`; None when there is no address."""
    if not value:
        return None
    text = value.strip()
    kind, semicolon, rest = text.partition(";")
    if semicolon and "@" not in kind:
        text = rest.strip()
    found = _ADDRESS.search(text)
    return found.group(0).rstrip(".") if found else None


def _reason(recipient: RecipientStatus) -> str:
    text = recipient.diagnostic or ""
    text = re.sub(r"^[\w.-]+;\s*", "", text)  # smtp; / X-Postfix;
    code = _SMTP_CODE.search(text)
    if code:  # "SMTP error from remote mail server after …: host …: 550 …" → "550 …"
        text = text[code.start() :]
    text = re.sub(r"(?<![\w.])[245]\d\d[ -](?:#?[245]\.\d{1,3}\.\d{1,3}\b)?\s*", "", text)
    text = re.sub(r"^\s*<[^<>]*>\s*(?::|\.\.\.)\s*", "", text)
    text = re.sub(r"\(#[245]\.\d{1,3}\.\d{1,3}\)", "", text)
    text = _collapse(text)
    if len(text) > 140:
        text = text[:139].rstrip() + "…"
    head = " ".join(part for part in (recipient.status, text) if part)
    return head or recipient.action or "no diagnostic"


def _severity(recipient: RecipientStatus) -> int:
    kind = recipient.kind
    return 0 if kind is BounceKind.HARD else 1 if kind is BounceKind.SOFT else 2


def _bounce_summary(kind: BounceKind, recipients: Sequence[RecipientStatus]) -> str:
    if kind is BounceKind.SOFT and all(r.kind is None for r in recipients):
        label = "delivery report"
    else:
        label = f"{kind.value} bounce"
    ordered = sorted(recipients, key=_severity)
    if len(ordered) == 1:
        return f"{label} for {ordered[0].address}: {_reason(ordered[0])}"
    parts = "; ".join(f"{r.address} {_reason(r)}" for r in ordered[:5])
    more = f"; and {len(ordered) - 5} more" if len(ordered) > 5 else ""
    return f"{label} for {len(ordered)} recipients: {parts}{more}"


def _first_token(addresses: Iterable[str], local_part: str) -> str | None:
    for address in addresses:
        token = verp_token(address, local_part)
        if token:
            return token
    return None


# --- MIME helpers -------------------------------------------------------------------------


def _decoded(value: object) -> str:
    """A header value with its RFC 2047 encoded words decoded, whitespace collapsed."""
    text = str(value)
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except Exception:  # a broken encoded word stays as it is
            text = str(value)
    return _collapse(text)


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else _decoded(value)


def _headers(msg: Message, name: str) -> list[str]:
    return [_decoded(value) for value in msg.get_all(name) or []]


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _walk(part: Message, depth: int = 0) -> Iterator[Message]:
    """Every part, entering multipart/* but never a returned message (message/*)."""
    yield part
    if depth >= _MAX_DEPTH or not _content_type(part).startswith("multipart/"):
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _walk(sub, depth + 1)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        charset = "utf-8"
        try:
            charset = part.get_content_charset() or "utf-8"
            text = payload.decode(charset, errors="replace")
        except Exception:
            text = payload.decode("utf-8", errors="replace")
    else:
        raw = part.get_payload()
        text = raw if isinstance(raw, str) else ""
    return text.replace("\r\n", "\n").replace("\r", "\n")[:_MAX_TEXT]


_TAG = re.compile(r"<[^<>]{0,2000}>")


def _human_text(root: Message) -> str:
    """The readable text of the message (text/plain, else de-tagged HTML), not attachments."""
    plain: list[str] = []
    markup: list[str] = []
    for part in _walk(root):
        ctype = _content_type(part)
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            markup.append(html.unescape(_TAG.sub(" ", _part_text(part))))
    return "\n\n".join(plain or markup)[:_MAX_TEXT]


_RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)


def _returned_message(root: Message) -> Message | None:
    """The headers of the message that the report is about, if it is attached."""
    for part in _walk(root):
        if part is root or _content_type(part) not in _RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            if payload and isinstance(payload[0], Message):
                return payload[0]
            continue
        parser = email.parser.HeaderParser(policy=email.policy.compat32)
        return parser.parsestr(_part_text(part))
    return None


def _field_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """The field blocks of a message/delivery-status or message/feedback-report part.

    The email package parses these parts into sub-messages (one per block); when it did
    not (a text/* type, or fields it left in a body), the text is read line by line.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _text_blocks(_part_text(part))
    blocks: list[list[tuple[str, str]]] = []
    for block in payload:
        if not isinstance(block, Message):
            continue
        # raw values: the fields are not RFC 5322 headers, so no header parsing is wanted
        fields = [(str(name).lower(), _collapse(str(value))) for name, value in block.raw_items()]
        if fields:
            blocks.append(fields)
        body = block.get_payload()
        if isinstance(body, str) and body.strip():
            blocks.extend(_text_blocks(body))
    return blocks


_FIELD_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)")


def _text_blocks(text: str) -> list[list[tuple[str, str]]]:
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[0] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, _collapse(f"{value} {line}"))
            continue
        match = _FIELD_LINE.match(line)
        if match:
            current.append((match.group(1).lower(), _collapse(match.group(2))))
    if current:
        blocks.append(current)
    return blocks


def _is_recipient_block(block: list[tuple[str, str]]) -> bool:
    return any(name in ("final-recipient", "original-recipient") for name, _ in block)


def _recipient_groups(blocks: list[list[tuple[str, str]]]) -> list[dict[str, str]]:
    """Per-recipient field groups; a repeated field name starts a new group (some MTAs
    forget the blank line between recipients)."""
    groups: list[dict[str, str]] = []
    for block in blocks:
        if not _is_recipient_block(block):
            continue
        group: dict[str, str] = {}
        for name, value in block:
            if name in group:
                groups.append(group)
                group = {}
            group[name] = value
        groups.append(group)
    return [g for g in groups if "final-recipient" in g or "original-recipient" in g][
        :_MAX_RECIPIENTS
    ]


def _message_fields(blocks: list[list[tuple[str, str]]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for block in blocks:
        if not _is_recipient_block(block):
            for name, value in block:
                fields.setdefault(name, value)
    return fields


def _remote_mta(value: str | None) -> str | None:
    if not value:
        return None
    kind, semicolon, rest = value.partition(";")
    text = rest if semicolon else kind
    words = text.split()
    if not words:
        return None
    return words[0].rstrip(".").strip("[]") or None


def _action(value: str | None) -> str | None:
    if not value:
        return None
    words = value.lower().split()
    return words[0] if words else None


def _status(value: str | None) -> str | None:
    if not value:
        return None
    found = _ENHANCED.search(value)
    return found.group(0) if found else None


# --- text bounces -------------------------------------------------------------------------

_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)|undelivered mail returned to sender|mail delivery failed"
    r"|delivery status notification|failure notice|returned mail|delivery failure"
    r"|delivery has failed|mail system error|non[- ]?remis|non recapitabile|unzustellbar"
    r"|nondeliverable|delayed mail|delivery delayed|message delivery has been delayed"
    r"|warning: (?:could not send|message .{0,80}delayed)|mail delivery (?:problem|warning))",
    re.IGNORECASE,
)
_BOUNCE_TEXT = re.compile(
    r"qmail-send program|created automatically by mail delivery software"
    r"|this is the mail system at host|wasn't able to deliver your message"
    r"|could not be delivered to one or more|the following address(?:es|\(es\))? failed"
    r"|delivery (?:has failed|to the following recipient)|delivery status notification"
    r"|has not yet been delivered to one or more|permanent fatal errors"
    r"|your message (?:could not|couldn't|wasn't|was not) (?:be )?delivered",
    re.IGNORECASE,
)
_ORIGINAL_MARKER = re.compile(
    r"^[ \t>-]*(?:below this line is a copy of the message|this is a copy of the message"
    r"|enclosed (?:are|is) the original|original message (?:headers|follows)"
    r"|[- ]*original message[- ]*$|the (?:original|header of the original) message"
    r"|undelivered message|message headers follow)",
    re.IGNORECASE | re.MULTILINE,
)
_FAILED_PHRASES = re.compile(
    r"permanent (?:error|fatal error)|could not be delivered|couldn't be delivered"
    r"|i've given up|failed permanently|delivery has failed",
    re.IGNORECASE,
)
_DELAYED_PHRASES = re.compile(
    r"not yet been delivered|this is a warning only|delivery incomplete|will (?:be )?retr(?:y|ied)"
    r"|temporary (?:error|problem|failure)|delivery attempts will continue",
    re.IGNORECASE,
)
_ANGLE_PARAGRAPH = re.compile(
    r"\A\s*<([^<>\s]+@[^<>\s]+)>(?:\s*\(expanded from[^)]*\))?\s*:\s*(.*)\Z", re.DOTALL
)
_INDENTED_ADDRESS = re.compile(r"^ {1,3}<?([^\s<>@]+@[^\s<>]+?)>?\s*$")
_QMAIL_REMOTE = re.compile(
    r"(?:Connected to )?(\S+?)(?: but | does not like | failed after )", re.IGNORECASE
)
_EXIM_HOST = re.compile(r"\bhost ([A-Za-z0-9.-]+\.[A-Za-z]{2,}|\S+) \[[0-9a-fA-F.:]+\]")
_POSTFIX_HOST = re.compile(r"\bhost ([A-Za-z0-9.-]+)\[[0-9a-fA-F.:]+\] said")


def _looks_like_bounce(msg: Message, text: str) -> bool:
    if _header(msg, "X-Failed-Recipients"):
        return True
    sender = email.utils.parseaddr(_header(msg, "From") or "")[1]
    if sender.partition("@")[0].lower() in _BOUNCE_SENDERS:
        return True
    if _BOUNCE_SUBJECT.search(_header(msg, "Subject") or ""):
        return True
    return bool(_BOUNCE_TEXT.search(text[:20_000]))


def _human_region(text: str) -> str:
    """The text before the copy of the returned message."""
    marker = _ORIGINAL_MARKER.search(text)
    return text[: marker.start()] if marker else text


def _text_action(region: str) -> str | None:
    if _FAILED_PHRASES.search(region):
        return "failed"
    if _DELAYED_PHRASES.search(region):
        return "delayed"
    return None


def _text_recipient(
    address: str, error: str, action: str | None, remote: str | None = None
) -> RecipientStatus | None:
    diagnostic = _collapse(error)
    status, _ = _find_status(diagnostic)
    if remote is None:
        for pattern in (_POSTFIX_HOST, _EXIM_HOST):
            found = pattern.search(diagnostic)
            if found:
                remote = found.group(1)
                break
    recipient = RecipientStatus(
        address=address,
        status=status,
        action=action,
        diagnostic=diagnostic or None,
        remote_mta=remote,
    )
    return recipient if recipient.kind is not None else None


def _angle_paragraphs(region: str, action: str | None) -> list[RecipientStatus]:
    """qmail (`<addr>:` then the error) and Postfix text (`<addr>: host … said: 550 …`)."""
    found: list[RecipientStatus] = []
    for paragraph in re.split(r"\n[ \t]*\n", region):
        match = _ANGLE_PARAGRAPH.match(paragraph)
        if not match:
            continue
        error = match.group(2)
        remote_match = _QMAIL_REMOTE.search(error)
        remote = remote_match.group(1) if remote_match else None
        if remote and not re.fullmatch(r"[0-9.]+|[A-Za-z0-9.-]+\.[A-Za-z]{2,}", remote):
            remote = None
        recipient = _text_recipient(match.group(1), error, action, remote)
        if recipient:
            found.append(recipient)
    return found


def _indented_blocks(region: str, action: str | None) -> list[RecipientStatus]:
    """Exim: the address indented by two spaces, its error lines by four."""
    found: list[RecipientStatus] = []
    lines = region.split("\n")
    for index, line in enumerate(lines):
        match = _INDENTED_ADDRESS.match(line)
        if not match:
            continue
        error: list[str] = []
        for following in lines[index + 1 : index + 40]:
            if not following.startswith("    ") or not following.strip():
                break
            error.append(following)
        recipient = _text_recipient(match.group(1), "\n".join(error), action)
        if recipient:
            found.append(recipient)
    return found


def _loose(
    msg: Message, region: str, action: str | None, ignore: set[str]
) -> list[RecipientStatus]:
    """Addresses from X-Failed-Recipients (else the text) and the first code after each."""
    failed = [
        addr
        for _, addr in email.utils.getaddresses(_headers(msg, "X-Failed-Recipients"))
        if "@" in addr
    ]
    if failed:
        candidates = failed
    else:
        candidates = []
        for match in _ADDRESS.finditer(region):
            addr = match.group(0).rstrip(".")
            if addr.lower() not in ignore and addr.partition("@")[0].lower() not in (
                _BOUNCE_SENDERS
            ):
                candidates.append(addr)
    unique = _unique(candidates)
    found: list[RecipientStatus] = []
    lowered = region.lower()
    positions = [lowered.find(addr.lower()) for addr in unique]
    for index, addr in enumerate(unique):
        start = positions[index]
        if start < 0:
            window = region
        else:
            later = [p for p in positions if p > start]
            end = min(later) if later else len(region)
            window = region[start:end]
            if len(unique) == 1 and _find_status(window)[0] is None:
                window = region
        status, at = _find_status(window)
        if status is None:
            continue  # loose matching needs a code: a mere mention is no bounce
        line_start = window.rfind("\n", 0, at) + 1
        line_end = window.find("\n", at)
        error = window[line_start : line_end if line_end >= 0 else len(window)]
        recipient = _text_recipient(addr, error, action)
        if recipient:
            found.append(recipient)
    return found


# --- the parser ---------------------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|out of (?:the )?office"
    r"|r[ée]ponse automatique|automatische antwort|risposta automatica|respuesta autom[áa]tica"
    r"|auto:)",
    re.IGNORECASE,
)
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus"})


class _Parser:
    def __init__(self, raw: bytes, envelope_to: Sequence[str], local_part: str) -> None:
        self.raw = raw
        self.envelope_to = [str(address) for address in envelope_to]
        self.local_part = local_part

    def parse(self) -> BounceReport:
        if not self.raw.strip():
            return self._unparseable(None, "empty message")
        msg = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        if not msg.keys():
            return self._unparseable(msg, "not an email message (no header fields)")
        parts = list(_walk(msg))
        types = [_content_type(part) for part in parts]
        for part, ctype in zip(parts, types, strict=True):
            if ctype in ("message/delivery-status", "message/global-delivery-status") or (
                ctype == "text/delivery-status"
            ):
                return self._dsn(msg, part)
        for part, ctype in zip(parts, types, strict=True):
            if ctype == "message/feedback-report":
                return self._arf(msg, part)
        text = _human_text(msg)
        if _looks_like_bounce(msg, text):
            return self._text_bounce(msg, text, "a bounce without a recognisable recipient")
        if self._is_auto_reply(msg):
            return self._auto_reply(msg)
        return self._unparseable(msg, "not a bounce, an auto-reply or a complaint")

    # --- the kinds ---

    def _dsn(self, msg: Message, part: Message) -> BounceReport:
        blocks = _field_blocks(part)
        per_message = _message_fields(blocks)
        recipients: list[RecipientStatus] = []
        for group in _recipient_groups(blocks):
            address = _clean_address(group.get("original-recipient")) or _clean_address(
                group.get("final-recipient")
            )
            if not address:
                continue
            diagnostic = group.get("diagnostic-code") or None
            recipients.append(
                RecipientStatus(
                    address=address,
                    status=_refine(_status(group.get("status")), diagnostic),
                    action=_action(group.get("action")),
                    diagnostic=diagnostic,
                    remote_mta=_remote_mta(group.get("remote-mta")),
                )
            )
        recipients = _dedupe(recipients)
        original = self._original_id(msg) or _clean_msgid(per_message.get("x-original-message-id"))
        kinds = {recipient.kind for recipient in recipients}
        if BounceKind.HARD in kinds:
            return self._report(BounceKind.HARD, recipients, msg, original)
        if BounceKind.SOFT in kinds:
            return self._report(BounceKind.SOFT, recipients, msg, original)
        readable = [r for r in recipients if r.action in _DONE_ACTIONS]
        if readable:
            return self._report(BounceKind.SOFT, recipients, msg, original)
        # a DSN without usable recipient fields: read its text like a text bounce
        return self._text_bounce(
            msg, _human_text(msg), "a delivery status report without recipient status"
        )

    def _text_bounce(self, msg: Message, text: str, why: str) -> BounceReport:
        region = _human_region(text)
        action = _text_action(region)
        ignore = {self._own_address(value) for value in self._address_headers(msg)}
        recipients = (
            _angle_paragraphs(region, action)
            or _indented_blocks(region, action)
            or _loose(msg, region, action, ignore)
        )
        recipients = _dedupe(recipients)
        original = self._original_id(msg) or _body_message_id(text[len(region) :])
        if not recipients:
            return self._unparseable(msg, why, original)
        kinds = {recipient.kind for recipient in recipients}
        kind = BounceKind.HARD if BounceKind.HARD in kinds else BounceKind.SOFT
        return self._report(kind, recipients, msg, original)

    def _arf(self, msg: Message, part: Message) -> BounceReport:
        blocks = _field_blocks(part)
        fields: dict[str, list[str]] = {}
        for block in blocks:
            for name, value in block:
                fields.setdefault(name, []).append(value)
        feedback_type = _action((fields.get("feedback-type") or [""])[0]) or "unknown"
        agent = (fields.get("user-agent") or [""])[0]
        returned = _returned_message(msg)
        addresses = [
            addr
            for addr in (_clean_address(value) for value in fields.get("original-rcpt-to", []))
            if addr
        ]
        if not addresses and returned is not None:
            addresses = [
                addr
                for _, addr in email.utils.getaddresses(_headers(returned, "To"))
                if "@" in addr
            ]
        diagnostic = f"feedback-type: {feedback_type}" + (f"; user-agent: {agent}" if agent else "")
        recipients = tuple(
            RecipientStatus(address=addr, diagnostic=diagnostic) for addr in _unique(addresses)
        )
        original = _clean_msgid(_header(returned, "Message-ID")) if returned else None
        extra = list(fields.get("original-mail-from", []))
        if returned is not None:
            extra += _headers(returned, "Return-Path")
        token = self._token(msg, extra)
        who = ", ".join(r.address for r in recipients) or "an unknown recipient"
        via = f" via {agent}" if agent else ""
        if feedback_type in _COMPLAINT_TYPES:
            summary = f"spam complaint ({feedback_type}) about {who}{via}"
            return BounceReport(BounceKind.COMPLAINT, recipients, token, original, summary)
        summary = f"unparseable: a {feedback_type} feedback report is not a complaint ({who}{via})"
        return BounceReport(BounceKind.UNPARSEABLE, recipients, token, original, summary)

    def _is_auto_reply(self, msg: Message) -> bool:
        submitted = _action(_header(msg, "Auto-Submitted"))
        if submitted and submitted != "no":
            return True
        for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autoresponse"):
            value = _header(msg, name)
            if value is not None and value.lower() not in ("no", "false", "0"):
                return True
        if (_header(msg, "Precedence") or "").lower() in ("auto_reply", "auto-reply"):
            return True
        if _header(msg, "X-MS-Exchange-Inbox-Rules-Loop") is not None:
            return True
        return bool(_AUTO_SUBJECT.search(_header(msg, "Subject") or ""))

    def _auto_reply(self, msg: Message) -> BounceReport:
        sender = email.utils.parseaddr(_header(msg, "From") or "")[1]
        subject = _header(msg, "Subject") or ""
        recipients = (
            (RecipientStatus(address=sender, diagnostic=subject or None),) if sender else ()
        )
        original = _clean_msgid(_header(msg, "In-Reply-To"))
        if original is None:
            references = re.findall(r"<[^<>\s]+>", _header(msg, "References") or "")
            original = references[-1] if references else None
        summary = f"auto-reply from {sender or 'an unknown sender'}" + (
            f": {subject[:140]}" if subject else ""
        )
        return BounceReport(BounceKind.AUTO_REPLY, recipients, self._token(msg), original, summary)

    # --- shared pieces ---

    def _report(
        self,
        kind: BounceKind,
        recipients: Sequence[RecipientStatus],
        msg: Message,
        original: str | None,
    ) -> BounceReport:
        return BounceReport(
            kind,
            tuple(recipients),
            self._token(msg),
            original,
            _bounce_summary(kind, recipients),
        )

    def _unparseable(
        self, msg: Message | None, why: str, original: str | None = None
    ) -> BounceReport:
        about: list[str] = []
        if msg is not None:
            sender = _header(msg, "From")
            subject = _header(msg, "Subject")
            if sender:
                about.append(f"from {sender[:100]}")
            if subject:
                about.append(f"subject {subject[:100]!r}")
        suffix = f" ({', '.join(about)})" if about else ""
        token = self._token(msg) if msg is not None else self._token_from(())
        if original is None and msg is not None:  # a person's reply names our message
            original = _clean_msgid(_header(msg, "In-Reply-To"))
        return BounceReport(
            BounceKind.UNPARSEABLE, (), token, original, f"unparseable: {why}{suffix}"
        )

    def _address_headers(self, msg: Message) -> list[str]:
        values: list[str] = []
        for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"):
            for value in _headers(msg, name):
                values.extend(addr for _, addr in email.utils.getaddresses([value]) if addr)
        return values

    def _own_address(self, value: str) -> str:
        return value.strip().strip("<>").lower()

    def _token_from(self, extra: Iterable[str]) -> str | None:
        return _first_token([*self.envelope_to, *extra], self.local_part)

    def _token(self, msg: Message, extra: Sequence[str] = ()) -> str | None:
        token = self._token_from([*self._address_headers(msg), *extra])
        if token is None:
            returned = _returned_message(msg)
            if returned is not None:
                token = _first_token(_headers(returned, "Return-Path"), self.local_part)
        return token

    def _original_id(self, msg: Message) -> str | None:
        returned = _returned_message(msg)
        return _clean_msgid(_header(returned, "Message-ID")) if returned is not None else None


_BODY_MESSAGE_ID = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE
)


def _body_message_id(text: str) -> str | None:
    found = _BODY_MESSAGE_ID.search(text)
    return found.group(1) if found else None


def _unique(addresses: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    result: list[str] = []
    for addr in addresses:
        if addr.lower() not in seen:
            seen.add(addr.lower())
            result.append(addr)
    return result


def _dedupe(recipients: Iterable[RecipientStatus]) -> list[RecipientStatus]:
    seen: set[str] = set()
    result: list[RecipientStatus] = []
    for recipient in recipients:
        if recipient.address.lower() not in seen:
            seen.add(recipient.address.lower())
            result.append(recipient)
    return result
