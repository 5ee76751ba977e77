"""GraphQL errors that carry `extensions.code`, so clients can branch on them."""

from __future__ import annotations

import datetime as dt

from graphql import GraphQLError

from domain.errors import InvalidInput


def _error(code: str, message: str, **extensions: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


def unauthenticated() -> GraphQLError:
    return _error(
        "UNAUTHENTICATED", "Sign in: send 'Authorization: Bearer <token>' with a valid API token."
    )


def not_found(what: str) -> GraphQLError:
    return _error("NOT_FOUND", f"No {what} with this id in your account.")


def bad_input(message: str, field: str | None = None) -> GraphQLError:
    return _error("BAD_USER_INPUT", message, **({"field": field} if field else {}))


def answer_invalid_input(error: GraphQLError) -> GraphQLError:
    """A rule's InvalidInput (domain/), raised in a resolver, answered as BAD_USER_INPUT
    naming the field; any other error as it is."""
    original = error.original_error
    if isinstance(original, InvalidInput):
        error.extensions = bad_input(original.message, original.field).extensions
    return error


def plan_required() -> GraphQLError:
    return _error("PLAN_REQUIRED", "Delivery tracking is available on the PAID and PREMIUM plans.")


def forbidden(message: str) -> GraphQLError:
    return _error("FORBIDDEN", message)


def history_expired(days: int | None = None) -> GraphQLError:
    window = f" ({days} days on your plan)" if days else ""
    return _error(
        "HISTORY_EXPIRED",
        f"This delivery is older than your plan's delivery history{window}; "
        "a higher plan shows a longer period.",
    )


# How a message names each address a person has.
_ADDRESS_NAMES = {
    "email": ("email", "email address"),
    "telegram_chat_id": ("telegramChatId", "Telegram chat id"),
    "phone": ("phone", "phone number"),
    "webhook_url": ("webhookUrl", "webhook URL"),
}


def duplicate_address(column: str, person_id: str, person_name: str) -> GraphQLError:
    """One address per channel in an account: another person already has this one."""
    field, label = _ADDRESS_NAMES[column]
    return _error(
        "DUPLICATE_ADDRESS",
        f"{person_name[:100]} (person {person_id}) already has this {label}: "
        "one address belongs to one person in an account.",
        field=field,
        personId=person_id,
    )


def address_suppressed(channel: str, address: str, reason: str, since: dt.datetime) -> GraphQLError:
    """A resend to an address on the suppression list would only fail again."""
    return _error(
        "ADDRESS_SUPPRESSED",
        f"{address} is suppressed on {channel} since {since.isoformat()} because "
        f"{reason[:200]}. Lift the suppression (liftSuppression) to send to it again.",
        channel=channel,
        address=address,
        reason=reason,
        since=since.isoformat(),
    )
