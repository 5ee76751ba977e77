"""What text a client may store, and how much of it an error message repeats."""

from __future__ import annotations

import re

from common.text import CONTROL_CHARACTERS, CONTROL_CHARACTERS_IN_TEXT
from domain.errors import InvalidInput

# The most of a client's input an error message repeats.
ECHO_LIMIT = 200


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as an error message repeats it: control characters written as escapes,
    and at most `limit` characters of it."""
    text = str(value)
    cut = text[:limit]
    escaped = CONTROL_CHARACTERS.sub(lambda found: f"\\u{ord(found.group()):04x}", cut)
    return escaped + ("…" if len(text) > limit else "")


def one_line(value: str, field: str) -> str:
    """`value` as it is; InvalidInput when it holds a control character."""
    return _refuse(CONTROL_CHARACTERS, value, field)


def multi_line(value: str, field: str) -> str:
    """Like `one_line`, but line breaks and tabs are allowed (comment bodies, templates)."""
    return _refuse(CONTROL_CHARACTERS_IN_TEXT, value, field)


def _refuse(pattern: re.Pattern[str], value: str, field: str) -> str:
    found = pattern.search(value)
    if found is not None:
        raise InvalidInput(
            f"'{field}' must not contain control characters "
            f"(U+{ord(found.group()):04X} at position {found.start() + 1}).",
            field=field,
        )
    return value
