"""Signed tokens: an unguessable 16-byte key plus an HMAC over it and its purpose.

A token carries only a random id (never an address or a sequential id), and the MAC
lets an endpoint reject a forged token without touching the database. The purpose
(pixel, bounce) is part of the MAC, so a token made for one cannot be used as another.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import uuid

_ID_BYTES = 16
_MAC_BYTES = 16
PIXEL = b"beacon.pixel.v1:"
BOUNCE = b"beacon.bounce.v1:"
# An invitation's secret is its id signed for this purpose: only a hash of it is stored,
# and the worker can still write the link into the email (ADR 0020).
INVITATION = b"beacon.invitation.v1:"
# How long an invitation's link works (invitePerson; its email says so).
INVITATION_LIFETIME = dt.timedelta(days=7)


def _mac(key: bytes, purpose: bytes, raw_id: bytes) -> bytes:
    return hmac.new(key, purpose + raw_id, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(id_hex: str, key: bytes, purpose: bytes = PIXEL) -> str:
    raw_id = bytes.fromhex(id_hex)
    if len(raw_id) != _ID_BYTES:
        raise ValueError("a token id is 16 bytes of hex")
    return base64.urlsafe_b64encode(raw_id + _mac(key, purpose, raw_id)).rstrip(b"=").decode()


def verify(token: str, key: bytes, purpose: bytes = PIXEL) -> str | None:
    """The id (hex) a genuine token carries, or None for anything else."""
    if len(token) != 43:  # base64url of 32 bytes, unpadded
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    raw_id, mac = raw[:_ID_BYTES], raw[_ID_BYTES:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(key, purpose, raw_id)):
        return None
    # The last character also carries two unused bits: accept only the one spelling,
    # so that one open is never counted under two different URLs.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None
    return raw_id.hex()


def invitation_secret(invitation_id: uuid.UUID, key: bytes) -> str:
    """The secret of an invitation's link (43 characters)."""
    return sign(invitation_id.hex, key, INVITATION)
