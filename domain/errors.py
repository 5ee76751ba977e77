"""The one error the rules raise: the caller's input breaks a rule."""

from __future__ import annotations


class InvalidInput(ValueError):
    """Input a rule refuses. `field` names the input field (as the API spells it), when
    one is to blame; the API answers it as BAD_USER_INPUT (resolvers/errors.py)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
