"""Read confidence end to end (issue 5, section 3): the real server judges each pixel
load by its user agent, the network it came from (through the proxy headers uvicorn
trusts) and the time since sending, exposes `readConfidence`, and lets a MACHINE open
set READ only for an account that counts machine opens. On SQLite and PostgreSQL.

The server reads its rules from a file of the operator's (OPEN_RULES_PATH): the shipped
rules with a 30 s time window, so that a test's prompt open is surely inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Beacon, UpdateLog, html_body, pixel_urls
from tests.support.reading import MAIL_CLIENT, untimed_rules
from tests.support.waiting import WAIT_SECONDS, eventually

pytestmark = pytest.mark.e2e

# Gmail's image proxy, from Google's network (66.249.80.0/20).
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GOOGLE_ADDRESS = "66.249.84.3"
# A browser-looking fetch from Mimecast's network (195.130.217.0/24): a link scanner.
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
MIMECAST_ADDRESS = "195.130.217.40"
WINDOW_SECONDS = 30

ADD_COMMENT = """
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) {
    deliveryStatus { deliveries { id address } }
  }
}
"""

UPDATE_ACCOUNT = """
mutation UpdateAccount($input: UpdateAccountInput!) {
  updateAccount(input: $input) { countMachineOpens }
}
"""


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """The shipped rules, with the operator's own time window; pixel hits logged, to show
    that their lines name neither the pixel nor the reader."""
    path = untimed_rules(tmp_path / "rules")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["time_rule"]["machine_within_seconds"] = WINDOW_SECONDS
    path.write_text(json.dumps(document), encoding="utf-8")
    return {"OPEN_RULES_PATH": str(path), "LOG_PIXEL_HITS": "1"}


async def load_pixel(url: str, user_agent: str, forwarded_for: str | None = None) -> None:
    """GET the pixel as the given client; the server sits behind a proxy on 127.0.0.1
    (FORWARDED_ALLOW_IPS) that names the client's address in X-Forwarded-For."""
    headers = {"User-Agent": user_agent}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"


async def opened(log: UpdateLog, delivery_id: str, count: int) -> dict[str, Any]:
    """The delivery as pushed once it has `count` open events."""
    update = await log.until(
        lambda u: (
            u["delivery"]["id"] == delivery_id
            and [e["type"] for e in u["delivery"]["events"]].count("opened") == count
        )
    )
    delivery: dict[str, Any] = update["delivery"]
    return delivery


def open_details(delivery: dict[str, Any]) -> list[str]:
    return [e["detail"] for e in delivery["events"] if e["type"] == "opened"]


async def test_each_open_is_judged_and_only_the_ones_that_count_make_a_delivery_read(
    beacon: Beacon,
) -> None:
    # Given a comment emailed to three contacts, each email sent
    people = {
        address: await beacon.add_contact(name, address)
        for name, address in [
            ("Ann", "ann@example.test"),
            ("Bob", "bob@example.test"),
            ("Cat", "cat@example.test"),
        ]
    }
    task_id = await beacon.create_task("Quarterly report", list(people.values()))
    async with beacon.subscribe(task_id) as log:
        added = await beacon.client.execute(
            ADD_COMMENT, {"taskId": task_id, "body": "The figures are attached"}
        )
        deliveries = added["addComment"]["deliveryStatus"]["deliveries"]
        ids = {d["address"]: d["id"] for d in deliveries}
        for delivery_id in ids.values():
            await log.until_state(delivery_id, "SENT")
        messages = await beacon.sink.wait_for_messages(3, timeout=WAIT_SECONDS)
        pixel = {m.rcpt_tos[0]: pixel_urls(html_body(m.message))[0] for m in messages}

        # When Ann's Gmail fetches her images through Google's image proxy
        await load_pixel(pixel["ann@example.test"], GMAIL_PROXY, GOOGLE_ADDRESS)
        # And a scanner in Mimecast's network fetches Bob's, looking like a browser
        await load_pixel(pixel["bob@example.test"], BROWSER, MIMECAST_ADDRESS)
        # And Cat's mail client loads hers within the window of its sending
        await load_pixel(pixel["cat@example.test"], MAIL_CLIENT)

        ann = await opened(log, ids["ann@example.test"], 1)
        bob = await opened(log, ids["bob@example.test"], 1)
        cat = await opened(log, ids["cat@example.test"], 1)

        # Then Ann's is a read through a proxy
        assert (ann["state"], ann["readConfidence"], ann["openCount"]) == ("READ", "PROXY", 1)
        assert open_details(ann) == [
            "PROXY: Gmail image proxy (user agent); network google-image-proxy"
        ]
        # And the other two are machine opens: recorded, but still only SENT
        assert (bob["state"], bob["readConfidence"], bob["openCount"]) == ("SENT", "MACHINE", 0)
        assert open_details(bob) == [
            "MACHINE: Mimecast network; network mimecast; not counted as a read"
        ]
        assert (cat["state"], cat["readConfidence"], cat["readAt"]) == ("SENT", "MACHINE", None)
        (cat_detail,) = open_details(cat)
        assert cat_detail.startswith("MACHINE: opened "), cat_detail
        assert cat_detail.endswith(" s after sending; network unknown; not counted as a read")

        # When the account chooses to count machine opens, and the scanner comes back
        counted = await beacon.client.execute(
            UPDATE_ACCOUNT, {"input": {"countMachineOpens": True}}
        )
        assert counted == {"updateAccount": {"countMachineOpens": True}}
        await load_pixel(pixel["bob@example.test"], BROWSER, MIMECAST_ADDRESS)

        # Then Bob's delivery is READ, still marked as a machine's
        bob = await opened(log, ids["bob@example.test"], 2)
        assert (bob["state"], bob["readConfidence"], bob["openCount"]) == ("READ", "MACHINE", 1)
        assert open_details(bob)[1] == "MACHINE: Mimecast network; network mimecast"

    # And /metrics counts the opens by verdict
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"{beacon.base_url}/metrics")).text
    assert 'beacon_pixel_opens_total{confidence="PROXY"} 1.0' in metrics
    assert 'beacon_pixel_opens_total{confidence="MACHINE"} 3.0' in metrics

    # And no client address was kept anywhere the API shows
    for delivery_id in ids.values():
        shown = json.dumps(await beacon.delivery(delivery_id))
        assert GOOGLE_ADDRESS not in shown
        assert MIMECAST_ADDRESS not in shown
        assert "127.0.0.1" not in shown

    # nor in the server's log (written in blocks), which names no pixel token either
    async def logged() -> str:
        text = beacon.server.log
        assert text.count('"path": "/p/{token}.gif"') == 4, text
        return text

    server_log = await eventually(logged)
    assert GOOGLE_ADDRESS not in server_log
    assert MIMECAST_ADDRESS not in server_log
    for url in pixel.values():
        assert url.removeprefix(beacon.base_url) not in server_log
