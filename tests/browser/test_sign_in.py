"""Sign-in with an API token, the header, the languages and the page's security headers."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.dashboard import Dashboard
from tests.browser.support import Beacon, screenshot

pytestmark = pytest.mark.browser


async def test_a_bad_token_is_refused_clearly_and_a_good_one_signs_in(
    browser: BrowserContext, embedded: Beacon
) -> None:
    page = await browser.new_page()
    dashboard = Dashboard(page, embedded.url)
    await dashboard.open()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    await dashboard.sign_in("bcn_not-a-real-token")
    alert = page.locator("#sign-in-error")
    await expect(alert).to_have_text(
        "This token was not accepted. Check that you copied all of it: it starts with “bcn_”."
    )
    await expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#dashboard")).to_be_hidden()
    await screenshot(page, "sign-in-bad-token")

    await dashboard.sign_in(embedded.token)
    await expect(page.locator("#account")).to_have_text("Demo · PREMIUM")
    await expect(page.locator("#live")).to_have_text("Live")
    await expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    # Embedded mode: the mail catcher is linked, to open the emails in another tab.
    mailbox = page.get_by_role("link", name="Mailbox")
    await expect(mailbox).to_have_attribute("href", "/mailbox")
    await expect(mailbox).to_have_attribute("target", "_blank")

    # The token is kept in localStorage: a reload stays signed in.
    await page.reload()
    await expect(page.locator("#account")).to_have_text("Demo · PREMIUM")
    await expect(page.locator("#sign-in")).to_be_hidden()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('beacon.token')") is None


async def test_russian_is_chosen_from_the_browser_and_can_be_switched(
    browser: BrowserContext, embedded: Beacon
) -> None:
    page = await browser.new_page()
    # The browser's language decides the first time (this profile is en-GB, so tell it
    # otherwise for this page); the pick in the header then wins and is remembered.
    await page.add_init_script(
        "Object.defineProperty(navigator, 'languages', {get: () => ['ru-RU', 'ru']})"
    )
    dashboard = Dashboard(page, embedded.url)
    await dashboard.open()
    await expect(page.get_by_role("heading", name="Вход")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await page.get_by_label("API-токен").fill(embedded.token)
    await page.get_by_role("button", name="Войти").click()
    await expect(page.locator("#live")).to_have_text("В реальном времени")  # noqa: RUF001
    await expect(page.get_by_role("heading", name="Задачи")).to_be_visible()
    # The walkthrough in Russian: a contact, a task for them, and its icon's label.
    await page.get_by_text("Новый контакт").click()
    await page.get_by_label("Имя").fill("Анна")
    await page.get_by_label("Эл. почта").fill("anna@example.test")
    await page.get_by_role("button", name="Добавить контакт").click()
    await expect(page.locator("#new-person-form [role=status]")).to_have_text(
        "Контакт Анна добавлен."
    )
    await page.get_by_label("Название").fill("Смета")
    await page.get_by_role("button", name="Создать задачу").click()
    icon = page.locator("#feed-task-status button")
    await expect(icon).to_have_attribute("data-state", "SENT")
    await expect(icon).to_have_accessible_name("Отправлено, подробности доставки")
    await screenshot(page, "dashboard-russian")

    await page.get_by_label("Язык").select_option("en")
    await expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    await expect(icon).to_have_accessible_name("Sent, show delivery details")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.reload()
    await expect(page.get_by_role("heading", name="Tasks")).to_be_visible()


async def test_the_page_is_served_with_a_strict_content_security_policy(embedded: Beacon) -> None:
    async with httpx.AsyncClient(base_url=embedded.url) as client:
        page = await client.get("/")
        script = await client.get("/static/js/app.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
