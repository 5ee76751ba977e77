"""What the browser tests share: Debian's Chromium and its flags, screenshots, the real
server with its demo account's token, and an SMTP sink that can hold mail in the queue."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

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

    sink: SmtpSink


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
