"""The popup's history reads as sentences, in English and in Russian: every event type
the server writes, with what it recorded said in the reader's language (no raw type,
code or operator's note in the Russian view) and what a remote server said quoted."""

# The expected Russian sentences have Cyrillic letters that look like Latin ones.
# ruff: noqa: RUF001

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from common.domain import fast_open_reason
from db.deliveries import NewEvent, add_events
from db.engine import Database
from tests.browser.dashboard import Api, Dashboard
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser

# Each event type as the server writes it, with a detail in the shape its writer uses
# (sending/outcomes.py, inbound/bounces.py, inbound/reports.py, db/opens.py, resolvers/),
# and one type from a newer server that this page does not know.
EVENTS = [
    ("retry_scheduled", "attempt 1: 451 4.7.1 Try again later; next at 2026-12-03T05:00:00+00:00"),
    (
        "rate_limited",
        "held back: 5 emails to this address in 3600 s; next at 2026-12-03T06:00:00+00:00",
    ),
    ("opened", "HUMAN: Thunderbird (user agent); network unknown"),
    (
        "opened",
        f"MACHINE: {fast_open_reason(0.4)}; network google; not counted as a read;"
        " opened by one of 3 recipients",
    ),
    ("delayed", "4.4.1 connection timed out"),
    ("delivered", "250 2.0.0 OK"),
    ("provider_sent", None),
    ("read", None),
    ("auto_reply", "Out of office until Monday"),
    ("complaint", "abuse report from the mailbox provider"),
    ("bounced", "550 5.1.1 user unknown"),
    ("suppressed", "hard bounce: 550 5.1.1 user unknown"),
    ("suppressed", "spam complaint: abuse report from the mailbox provider"),
    ("failed", "gave up after 5 attempts: 451 4.7.1 Try again later"),
    ("failed", "550 5.7.1 rejected by policy"),
    ("resend_requested", None),
    ("archived_by_the_future", "a newer server's note"),
]
TYPES = {"queued", "sent"} | {kind for kind, _ in EVENTS}

# What a Russian reader must not meet: the raw types, the codes and the operator's
# English that the server wrote around the remote servers' own words.
RAW = [
    *TYPES,
    *(kind.replace("_", " ") for kind in TYPES),
    "SUPPRESSED",
    "HUMAN",
    "MACHINE",
    "held back",
    "next at",
    "gave up",
    "attempt",
    "hard bounce",
    "spam complaint",
    "network",
    "not counted",
    "opened by one of",
    "after sending",
]


async def record_events(beacon: Beacon, delivery_id: str) -> None:
    """Append the events to the delivery, in the server's own database, as its writers
    would (nothing in the API makes all of them for one delivery)."""
    db = Database(beacon.database_url)
    try:
        now = dt.datetime.now(dt.UTC)
        async with db.write() as conn:
            await add_events(
                conn,
                [
                    NewEvent(uuid.UUID(delivery_id), kind, now + dt.timedelta(seconds=i), detail)
                    for i, (kind, detail) in enumerate(EVENTS)
                ],
            )
    finally:
        await db.dispose()


async def open_history(page: Page, dashboard: Dashboard) -> Locator:
    await dashboard.feed_task_icon.click()
    dialog = page.locator("#details")
    await expect(dialog).to_be_visible()
    history = dialog.locator("details.history")
    if await history.get_attribute("open") is None:  # the popup remembers it unfolded
        await history.locator("summary").click()
    lines = dialog.locator(".history li")
    await expect(lines).to_have_count(len(EVENTS) + 2)  # and queued, sent
    return lines


async def test_every_event_reads_as_a_sentence_in_russian_and_in_english(
    browser: BrowserContext, embedded: Beacon
) -> None:
    api = Api(embedded)
    try:
        ann = await api.add_contact("Ann", "ann@example.test")
        task_id = await api.create_task("History", [ann])
        data = await api.client.execute(
            "query($id: ID!) { task(id: $id) { deliveryStatus { deliveries { id state } } } }",
            {"id": task_id},
        )
    finally:
        await api.close()
    [delivery] = data["task"]["deliveryStatus"]["deliveries"]

    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.signed_in(embedded.token)
    await dashboard.open_task("History")
    await dashboard.expect_state(dashboard.feed_task_icon, "SENT")
    await record_events(embedded, delivery["id"])
    await page.get_by_label("Language").select_option("ru")
    await page.reload()  # the feed reads the new events
    await expect(page.locator("#feed-title")).to_have_text("History")

    lines = await open_history(page, dashboard)
    texts = await lines.all_inner_texts()  # each: its time, then its sentence
    assert len(texts) == len(EVENTS) + 2
    for text in texts:
        assert any("а" <= c <= "я" for c in text.lower()), text
        assert text.endswith("."), text
        # What a server or provider said is quoted as it was: look outside the quotes.
        ours = re.sub(r"«[^»]*»", "«…»", text)
        for raw in RAW:
            assert raw not in ours, f"{raw!r} in {text!r}"
    await screenshot(page, "history-russian")

    def line(kind: str) -> Locator:
        return page.locator(f'#details .history li[data-event="{kind}"] .event__text')

    # Times the server wrote in UTC are said in the reader's zone (Tokyo, UTC+9).
    await expect(line("rate_limited")).to_have_text(
        re.compile(
            r"^Отложено: на этот адрес уже ушло 5 писем за 1 час; следующая попытка — .*15:00:00\.$"
        )
    )
    await expect(line("retry_scheduled")).to_have_text(
        re.compile(
            r"^Попытка 1 не удалась \(«451 4\.7\.1 Try again later»\); следующая — .*14:00:00\.$"
        )
    )
    await expect(line("suppressed").first).to_have_text(
        "Адрес в списке блокировки после жёсткого возврата («550 5.1.1 user unknown»):"
        " писем на него больше не отправляем."
    )
    await expect(line("opened").nth(1)).to_have_text(
        "Открыто: робот (сканер безопасности или предзагрузка) — через 0,4 с после отправки,"
        " из сети «google». Не считается прочтением. Одно письмо ушло всем получателям (их 3):"
        " открыть его мог любой из них."
    )
    await expect(line("archived_by_the_future")).to_have_text(
        "Записано другое событие доставки: «a newer server's note»."
    )

    # The same history in English: sentences too, and the unknown type named.
    await page.keyboard.press("Escape")
    await page.get_by_label("Язык").select_option("en")
    lines = await open_history(page, dashboard)
    sentences = await lines.locator(".event__text").all_inner_texts()
    assert len(sentences) == len(EVENTS) + 2
    for text in sentences:
        assert text[0].isupper(), text
        assert text.endswith("."), text
        assert "_" not in text, text
    await expect(line("failed").first).to_contain_text(
        "Gave up after 5 attempts; the last answer was “451 4.7.1 Try again later”."
    )
    await expect(line("archived_by_the_future")).to_contain_text(
        "Another event was recorded: “archived by the future”, “a newer server's note”."
    )
    await screenshot(page, "history-english")
