from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from html import escape

import aiosmtplib
import httpx
import pytest
from starlette.applications import Starlette

from mailcatcher.routes import mailbox_routes
from mailcatcher.server import MailCatcher
from mailcatcher.store import MailStore

PAGE_HTML = (
    '<p class="note">Ann said: &lt;b&gt;hi&lt;/b&gt; &amp; "bye"</p>'
    "<script>alert(1)</script>"
    '<img src="http://127.0.0.1:8000/p/tok.gif" width="1" height="1" alt="">'
)


@pytest.fixture
def store() -> MailStore:
    return MailStore(limit=3)


@pytest.fixture
async def catcher(store: MailStore) -> AsyncIterator[MailCatcher]:
    async with MailCatcher(store, "127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def client(store: MailStore) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=mailbox_routes(store))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://beacon.test") as client:
        yield client


def make_message(subject: str, html: str = PAGE_HTML) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Beacon <notifications@beacon.test>"
    message["To"] = "Ann <ann@x.test>, bob@x.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(subject))}@beacon>"
    message.set_content("plain text version")
    message.add_alternative(html, subtype="html")
    return message


async def deliver(catcher: MailCatcher, message: EmailMessage, *rcpts: str) -> None:
    await aiosmtplib.send(
        message,
        hostname=catcher.host,
        port=catcher.port,
        recipients=list(rcpts) or None,
        start_tls=False,
        local_hostname="beacon.test",
        timeout=5,
    )


async def test_the_inbox_lists_messages_newest_first_with_escaped_subjects(
    catcher: MailCatcher, client: httpx.AsyncClient, store: MailStore
) -> None:
    await deliver(catcher, make_message("First <b>bold</b> & co"))
    await deliver(catcher, make_message("Second"))

    response = await client.get("/mailbox")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "First &lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "<b>bold</b>" not in page
    assert "Ann &lt;ann@x.test&gt;" in page
    assert page.index("Second") < page.index("First")
    newest, oldest = store.newest_first()
    assert f'href="/mailbox/{newest.id}"' in page
    assert f'href="/mailbox/{oldest.id}"' in page


async def test_the_inbox_says_so_when_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/mailbox")

    assert response.status_code == 200
    assert "No mail yet" in response.text


async def test_a_message_page_shows_the_html_in_a_sandboxed_srcdoc_iframe(
    catcher: MailCatcher, client: httpx.AsyncClient, store: MailStore
) -> None:
    await deliver(catcher, make_message("Pixel inside"))
    [stored] = store.newest_first()

    response = await client.get(f"/mailbox/{stored.id}")

    assert response.status_code == 200
    page = response.text
    assert f'<iframe sandbox srcdoc="{escape(PAGE_HTML, quote=True)}' in page
    # The message's markup exists only inside the attribute, never as live HTML.
    assert "<script>" not in page
    assert '<p class="note">' not in page
    assert "allow-scripts" not in page
    assert "&lt;img src=&quot;http://127.0.0.1:8000/p/tok.gif&quot;" in page
    assert "plain text version" in page
    assert "Pixel inside" in page
    assert escape(stored.message_id) in page


async def test_the_eml_download_is_the_raw_message_as_received(
    catcher: MailCatcher, client: httpx.AsyncClient, store: MailStore
) -> None:
    raw = (
        b"From: a@x.test\r\nTo: b@x.test\r\nSubject: Raw one\r\n"
        b"Message-ID: <raw@x.test>\r\n\r\nLine one\r\n.leading dot\r\n"
    )
    async with aiosmtplib.SMTP(
        hostname=catcher.host, port=catcher.port, start_tls=False, local_hostname="t.test"
    ) as smtp:
        await smtp.sendmail("a@x.test", ["b@x.test"], raw)
    [stored] = store.newest_first()

    response = await client.get(f"/mailbox/{stored.id}.eml")

    assert response.status_code == 200
    assert response.headers["content-type"] == "message/rfc822"
    # ".leading dot" travels dot-stuffed; what comes back must be byte for byte the original.
    assert response.content == raw


async def test_the_json_listing_describes_each_message(
    catcher: MailCatcher, client: httpx.AsyncClient, store: MailStore
) -> None:
    await deliver(catcher, make_message("For the API"), "ann@x.test", "someone-else@y.test")
    [stored] = store.newest_first()

    response = await client.get("/mailbox/messages.json")

    assert response.status_code == 200
    [entry] = json.loads(response.text)
    assert entry["id"] == stored.id
    assert entry["subject"] == "For the API"
    assert entry["from"] == "Beacon <notifications@beacon.test>"
    assert entry["to"] == "Ann <ann@x.test>, bob@x.test"
    assert entry["message_id"] == stored.message_id
    assert entry["envelope_to"] == ["ann@x.test", "someone-else@y.test"]
    received_at = datetime.fromisoformat(entry["received_at"])
    assert received_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("path", ["/mailbox/0123abcd", "/mailbox/0123abcd.eml"])
async def test_an_unknown_id_is_not_found(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404


async def test_the_store_drops_the_oldest_message_beyond_its_limit(
    catcher: MailCatcher, client: httpx.AsyncClient, store: MailStore
) -> None:
    for n in range(4):
        await deliver(catcher, make_message(f"Message {n}"))

    kept = [m.subject for m in store.newest_first()]
    listing = json.loads((await client.get("/mailbox/messages.json")).text)

    assert kept == ["Message 3", "Message 2", "Message 1"]
    assert [entry["subject"] for entry in listing] == kept
    assert "Message 0" not in (await client.get("/mailbox")).text


def test_a_store_evicts_by_arrival_not_by_lookup() -> None:
    store = MailStore(limit=2)
    first = store.add("a@x.test", ["b@x.test"], b"Subject: one\r\n\r\nx\r\n")
    store.add("a@x.test", ["b@x.test"], b"Subject: two\r\n\r\nx\r\n")
    assert store.get(first.id) is first

    store.add("a@x.test", ["b@x.test"], b"Subject: three\r\n\r\nx\r\n")

    assert store.get(first.id) is None
    assert [m.subject for m in store.newest_first()] == ["three", "two"]
    assert len(store) == 2


async def test_the_catcher_accepts_any_recipient(catcher: MailCatcher, store: MailStore) -> None:
    await deliver(catcher, make_message("Anyone"), "reject@x.test", "defer@x.test")

    [stored] = store.newest_first()
    assert stored.envelope_to == ("reject@x.test", "defer@x.test")


async def test_stopping_the_catcher_closes_connections_still_open(store: MailStore) -> None:
    catcher = MailCatcher(store, "127.0.0.1", 0)
    await catcher.start()
    smtp = aiosmtplib.SMTP(
        hostname=catcher.host, port=catcher.port, start_tls=False, local_hostname="t.test"
    )
    await smtp.connect()

    await catcher.stop()

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.noop()
    smtp.close()
