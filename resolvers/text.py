"""What text a client may store, and how much of it an error message repeats."""

from __future__ import annotations

import re

from resolvers.errors import bad_input

# C0 controls (NUL, ESC, line breaks…), DEL and the C1 controls: nothing a name, title or
# address holds. A NUL is refused by PostgreSQL's text type, cuts strings short in C
# libraries, and line breaks in a title or address end up in mail headers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What a comment or a template may hold besides: line breaks and tabs.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# The most of a client's input an error message repeats.
ECHO_LIMIT = 200


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as an error message repeats it: control characters written as escapes,
    and at most `limit` characters of it."""
    text = str(value)
    cut = text[:limit]
    escaped = _CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", cut)
    return escaped + ("…" if len(text) > limit else "")


def one_line(value: str, field: str) -> str:
    """`value` as it is, or BAD_USER_INPUT when it holds a control character."""
    return _refuse(_CONTROL, value, field)


def multi_line(value: str, field: str) -> str:
    """Like `one_line`, but line breaks and tabs are allowed (comment bodies, templates)."""
    return _refuse(_CONTROL_IN_TEXT, value, field)


def _refuse(pattern: re.Pattern[str], value: str, field: str) -> str:
    found = pattern.search(value)
    if found is not None:
        raise bad_input(
            f"'{field}' must not contain control characters "
            f"(U+{ord(found.group()):04X} at position {found.start() + 1}).",
            field=field,
        )
    return value
