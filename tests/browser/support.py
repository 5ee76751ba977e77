"""What the browser tests share: Debian's Chromium and its flags, screenshots, the real
server with its demo account's token, and an SMTP sink that can hold mail in the queue."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from playwright.async_api import ConsoleMessage, Page

from tests.support.server import ROOT, ServerProcess
from tests.support.smtp_sink import SmtpSink

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# The viewer's time zone: far from UTC, so that a time shown in UTC by mistake is caught.
TIME_ZONE = "Asia/Tokyo"

_TOKEN_LINE = re.compile(r"sign-in token\s*:\s*(bcn_\S+)")


@dataclass
class PageProblems:
    """Uncaught exceptions and CSP violations on any page: a test fails on them."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.errors.append(f"CSP: {message.text}")


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/browser/NAME.png (ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


# --------------------------------------------------------------------------- the server


@dataclass
class Beacon:
    """A running `python main.py serve` and its demo account's token."""

    server: ServerProcess
    token: str

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.server.data_dir / 'beacon.sqlite3'}"


@dataclass
class SinkBeacon(Beacon):
    """A server whose mail goes to `sink` (SMTP_URL): no /mailbox in this mode."""

    sink: GatedSink


def _demo_token(log: str) -> str:
    found = _TOKEN_LINE.search(log)
    assert found, f"no sign-in token in the server log:\n{log}"
    return found.group(1)


@asynccontextmanager
async def running_beacon(
    data_dir: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Beacon]:
    """The server on a fresh SQLite database: on first start it makes a demo account
    and prints its token, as a newcomer sees it."""
    async with ServerProcess(data_dir, env) as server:
        try:
            yield Beacon(server, _demo_token(server.log))
        finally:
            # Captured by pytest and shown only when the test fails.
            sys.stderr.write(f"----- server log ({server.base_url}) -----\n{server.log}\n")


# --------------------------------------------------------------------------- the SMTP sink


class _GatedHandler:
    """The sink's handler, except that MAIL FROM waits while the gate is closed."""

    def __init__(self, inner: Any, gate: asyncio.Event) -> None:
        self.inner = inner
        self.gate = gate

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.gate.wait()
        reply: str = await self.inner.handle_MAIL(server, session, envelope, address, options)
        return reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply: str = await self.inner.handle_RCPT(server, session, envelope, address, options)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply: str = await self.inner.handle_DATA(server, session, envelope)
        return reply


class GatedSink(SmtpSink):
    """The test SMTP server (550 5.1.1 for a local part with "reject"), which can also
    hold every transaction at MAIL FROM: inside `holding()` what it carries stays QUEUED,
    so a test can see that state (keep it under the server's SMTP_TIMEOUT_SECONDS)."""

    def __init__(self) -> None:
        super().__init__(hostname="sink.test")
        self.gate = asyncio.Event()
        self.gate.set()
        self.handler = _GatedHandler(self.handler, self.gate)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        self.gate.clear()
        try:
            yield
        finally:
            self.gate.set()
