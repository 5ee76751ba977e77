"""Idempotency keys' rules: which mutations take one, what a valid key is, and the
canonical hash of a mutation's input that tells a retry from a different request.

A key is stored with the hash only (db/idempotency.py): the same key with the same hash
is a retry and gets the first result; with another hash it is a mistake the client must
hear about (ADR 0021).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping

# The mutations that take a key, by their GraphQL names.
IDEMPOTENT_MUTATIONS = frozenset({"createTask", "addComment", "addPerson", "resendDelivery"})

# How long a key answers with its first result; after that it starts afresh.
KEY_LIFETIME = dt.timedelta(hours=24)

MAX_KEY_LENGTH = 255
# Printable ASCII: what fits in an HTTP header as it is, and what a log line shows.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an idempotency key, or None when it can."""
    if not key:
        return "must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"is longer than {MAX_KEY_LENGTH} characters"
    if not _PRINTABLE_ASCII.fullmatch(key):
        return "must be printable ASCII (characters 0x20 to 0x7E)"
    return None


def input_hash(mutation: str, arguments: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the mutation's name and arguments as canonical JSON: keys sorted,
    no spaces, so the same input always hashes alike whatever order it came in."""
    canonical = json.dumps(
        {"mutation": mutation, "arguments": arguments},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
