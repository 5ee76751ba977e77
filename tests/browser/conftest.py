"""Browser fixtures: Debian's Chromium driven by Playwright, and the real server.

Chromium is the system package (/usr/bin/chromium, installed by .ci/run): Playwright is
only the driver here and never downloads a browser. Without it these tests skip on a
developer's machine and fail in CI (CI=true).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIME_ZONE,
    Beacon,
    PageProblems,
    SinkBeacon,
    running_beacon,
)
from tests.support.reading import DESKTOP_CHROME
from tests.support.services import require_service
from tests.support.smtp_sink import SmtpSink


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile (en-GB, Tokyo time) whose pages are watched for errors."""
    if not CHROMIUM.exists():
        require_service("chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    problems = PageProblems()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            # The mailbox loads pixels: as a person's browser, not "HeadlessChrome",
            # which the read-confidence rules take for a scanner. A switch, not
            # Playwright's user_agent: that one misses the sandboxed email iframe.
            args=[*CHROMIUM_ARGS, f"--user-agent={DESKTOP_CHROME}"],
            headless=True,
            locale="en-GB",
            timezone_id=TIME_ZONE,
            viewport={"width": 1280, "height": 860},
        )
        for page in context.pages:
            problems.watch(page)
        context.on("page", problems.watch)
        try:
            yield context
        finally:
            await context.close()
    assert not problems.errors, "\n".join(problems.errors)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Beacon]:
    """The embedded default: the built-in mail catcher, whose /mailbox pages load the
    tracking pixel of the email they show."""
    async with running_beacon(tmp_path / "server") as beacon:
        yield beacon


@pytest.fixture
async def with_sink(tmp_path: Path) -> AsyncIterator[SinkBeacon]:
    """The server sending through the test SMTP server (SMTP_URL)."""
    async with SmtpSink() as sink:
        env = {"SMTP_URL": sink.url, "SMTP_TIMEOUT_SECONDS": "30"}
        async with running_beacon(tmp_path / "server", env) as beacon:
            yield SinkBeacon(beacon.server, beacon.token, sink=sink)
