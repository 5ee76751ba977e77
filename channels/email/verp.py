"""VERP return paths: each message's envelope sender is `bounces+<token>@<bounce domain>`,
so the token comes back as the envelope recipient of its bounce. The token is the
message's key with our MAC (common/tokens.py, purpose BOUNCE): a bounce proves which of
our messages it is about, and a forged one is refused without a database look-up."""

from __future__ import annotations

import email.utils
import re

from common.tokens import BOUNCE, sign, verify

_TOKEN = re.compile(r"[A-Za-z0-9_~=-]+(?:\.[A-Za-z0-9_~=-]+)*")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*")


def verp_address(token: str, domain: str, local_part: str = "bounces") -> str:
    """`bounces+<token>@<domain>`; ValueError for a token that cannot sit in a local part."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"a VERP token must be a non-empty URL-safe string, not {token!r}")
    if not _LOCAL_PART.fullmatch(local_part):
        raise ValueError(f"invalid VERP local part {local_part!r}")
    domain = domain.strip()
    if not domain or "@" in domain or any(char.isspace() or char in "<>" for char in domain):
        raise ValueError(f"invalid VERP domain {domain!r}")
    return f"{local_part}+{token}@{domain}"


def verp_token(address: str, local_part: str = "bounces") -> str | None:
    """The token of a VERP address (`Bounces+tok@d`, `<bounces+tok@d>`, `Name <…>`).

    The local part compares case-insensitively; the token keeps its case. None when the
    address is not one of ours. The domain is not checked.
    """
    try:
        addr = email.utils.parseaddr(address)[1] or address
    except Exception:
        addr = address
    addr = addr.strip().strip("<>").strip()
    local, at, domain = addr.rpartition("@")
    if not at or not domain or not local:
        return None
    base, plus, token = local.partition("+")
    if not plus or base.lower() != local_part.lower():
        return None
    return token if _TOKEN.fullmatch(token) else None


def return_path(message_key: str, secret_key: bytes, domain: str) -> str:
    """The signed VERP envelope sender for the message `message_key` (hex)."""
    return verp_address(sign(message_key, secret_key, BOUNCE), domain)


def message_key_of(token: str, secret_key: bytes) -> str | None:
    """The message key (hex) a VERP token carries when we signed it, else None."""
    return verify(token, secret_key, BOUNCE)
