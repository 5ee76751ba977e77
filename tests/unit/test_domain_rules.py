"""The pure rules of domain/: who gets which message, and what input is valid. No
database and no GraphQL: the rules stand alone."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from common.domain import Channel, PersonKind, Plan, ScenarioTrigger, TrackingConsent
from domain.channels import channels_configured
from domain.errors import InvalidInput
from domain.recipients import addresses_of, message_id_domain, plan_messages
from domain.scenarios import render, validate_scenario
from domain.validation import (
    MAX_TOKEN_NAME,
    PersonFields,
    validate_email,
    validate_phone,
    validate_token_name,
)

EVERYTHING = frozenset(Channel)


@dataclass(frozen=True)
class Account:
    plan: str = Plan.PAID.value
    open_tracking: bool = True
    require_tracking_consent: bool = False
    show_all_recipients: bool = False


@dataclass(frozen=True)
class Person:
    email: str | None = None
    telegram_chat_id: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    kind: str = PersonKind.CONTACT.value
    disabled_channels: Sequence[str] | None = None
    tracking_consent: str = TrackingConsent.UNKNOWN.value
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def test_a_person_is_reached_on_each_configured_channel_they_have_not_switched_off() -> None:
    person = Person(email="a@example.com", phone="+15551234567", disabled_channels=["SMS"])

    found = addresses_of(person, frozenset({Channel.EMAIL, Channel.SMS, Channel.TELEGRAM}))

    assert found == {Channel.EMAIL: "a@example.com"}


def test_in_app_is_for_employees_only() -> None:
    employee = Person(kind=PersonKind.EMPLOYEE.value)

    assert addresses_of(employee, EVERYTHING) == {Channel.IN_APP: "in-app"}
    assert addresses_of(Person(), EVERYTHING) == {}


def test_emails_share_one_message_and_one_pixel_when_all_recipients_are_shown() -> None:
    people = [Person(email="a@example.com"), Person(email="b@example.com", phone="+15551234567")]

    planned = plan_messages(Account(show_all_recipients=True), people, EVERYTHING)

    emails = [message for message in planned if message.channel is Channel.EMAIL]
    assert len(emails) == 1
    assert [route.address for route in emails[0].routes] == ["a@example.com", "b@example.com"]
    assert emails[0].pixel_id is not None
    # The messengers still get a message each.
    assert sorted(
        message.channel for message in planned if message.channel is not Channel.EMAIL
    ) == [
        Channel.SMS,
        Channel.WHATSAPP,
    ]


def test_one_recipient_who_refused_tracking_takes_the_pixel_out_of_a_shared_email() -> None:
    people = [
        Person(email="a@example.com"),
        Person(email="b@example.com", tracking_consent=TrackingConsent.DENIED.value),
    ]

    [shared] = plan_messages(Account(show_all_recipients=True), people, EVERYTHING)
    separate = plan_messages(Account(), people, EVERYTHING)

    assert shared.pixel_id is None
    assert [message.pixel_id is not None for message in separate] == [True, False]


def test_the_free_plan_never_tracks() -> None:
    [message] = plan_messages(Account(plan=Plan.FREE.value), [Person(email="a@x.org")], EVERYTHING)

    assert message.pixel_id is None


def test_message_ids_take_the_senders_domain() -> None:
    assert message_id_domain("Beacon <noreply@mail.example.com>") == "mail.example.com"
    assert message_id_domain("") == "beacon.localhost"


def test_messengers_count_as_configured_only_with_every_credential() -> None:
    assert channels_configured({}) == {Channel.EMAIL, Channel.WEBHOOK, Channel.IN_APP}
    partial = {"twilio_account_sid": "AC1", "twilio_auth_token": "t", "telegram_bot_token": "x"}
    assert channels_configured(partial) == {
        Channel.EMAIL,
        Channel.WEBHOOK,
        Channel.IN_APP,
        Channel.TELEGRAM,
    }


def test_validators_clean_what_they_accept_and_name_the_field_they_refuse() -> None:
    assert validate_email("  a@example.com ") == "a@example.com"
    assert validate_phone("+1 (555) 123-4567") == "+15551234567"
    with pytest.raises(InvalidInput) as refused:
        validate_email("not-an-email")
    assert refused.value.field == "email"


@pytest.mark.parametrize("name", ["", "   ", "a\tb", "x" * (MAX_TOKEN_NAME + 1)])
def test_a_token_name_is_one_line_of_1_to_200_characters(name: str) -> None:
    # One rule for the API's createApiToken and the CLI's create-token.
    assert validate_token_name("  deploy bot ") == "deploy bot"
    with pytest.raises(InvalidInput) as refused:
        validate_token_name(name)
    assert refused.value.field == "name"


def test_a_person_field_that_cannot_be_cleared_refuses_null() -> None:
    with pytest.raises(InvalidInput) as refused:
        PersonFields.validate(tracking_consent=None)

    assert refused.value.field == "trackingConsent"


def test_a_keyword_scenario_needs_its_keyword_and_others_drop_it() -> None:
    with pytest.raises(InvalidInput):
        validate_scenario(name="n", trigger=ScenarioTrigger.KEYWORD, keyword=" ", template="t")

    fields = validate_scenario(
        name=" n ", trigger=ScenarioTrigger.TASK_CREATED, keyword="urgent", template="t"
    )
    assert (fields.name, fields.keyword) == ("n", None)


def test_templates_substitute_placeholders_and_nothing_else() -> None:
    text = render("{task}: {comment} {0.__class__}", task_title="T", comment=None)

    assert text == "T:  {0.__class__}"
