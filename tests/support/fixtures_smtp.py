"""Pytest fixtures for a real SMTP server.

Load with pytest_plugins = ["tests.support.fixtures_smtp"].
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.smtp_sink import SmtpSink


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    async with SmtpSink() as sink:
        yield sink
