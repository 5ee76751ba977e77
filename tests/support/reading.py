"""How a person reads a test email, as the pixel's read confidence sees it.

A test loads a pixel milliseconds after the email was sent, and with an HTTP library's
user agent: both are what scanners look like (pixel/open_rules.json). So the servers the
tests start use the shipped rules without the time rule, and a test that means "the
recipient opened it" loads the pixel as a mail client. The time rule and the user-agent
rules have tests of their own that use the shipped file as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from pixel.confidence import DEFAULT_RULES_PATH

# Thunderbird 128 on Linux: a mail client that shows images itself (HUMAN).
MAIL_CLIENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
# Desktop Chrome, for the browser tests' mailbox (headless Chromium says "HeadlessChrome",
# which the rules take for a scanner).
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
READ_AS_PERSON = {"User-Agent": MAIL_CLIENT}


def untimed_rules(directory: Path) -> Path:
    """The shipped rules with the time rule off, written into `directory`."""
    document = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    document["time_rule"]["machine_within_seconds"] = None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "open_rules.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
