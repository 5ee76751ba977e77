"""The embedded default, as a newcomer meets it: no DATABASE_URL, no SMTP_URL. SQLite
under the data directory, the built-in mail catcher, a demo account printed at start."""

from __future__ import annotations

import html
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import ADD_CONTACT, CREATE_TASK, pixel_urls, run_cli
from tests.support.graphql_client import GraphQLClient
from tests.support.reading import READ_AS_PERSON
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TASK_STATUS = """
query TaskStatus($id: ID!) {
  task(id: $id) {
    deliveryStatus { state read deliveries { address state readAt } }
  }
}
"""

SUBCOMMANDS = ["serve", "worker", "migrate", "create-account"]

_TOKEN_LINE = re.compile(r"sign-in token\s*:\s*(\S+)")
_SRCDOC = re.compile(r"<iframe\b[^>]*\bsrcdoc=\"([^\"]*)\"", re.IGNORECASE)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """`python main.py serve` with nothing configured but the port and the data dir."""
    # Empty values count as unset: the defaults apply even if the caller's shell has these.
    server = ServerProcess(tmp_path / "data", {"DATABASE_URL": "", "SMTP_URL": ""})
    async with server:
        yield server


async def test_given_the_embedded_default_when_it_starts_then_a_demo_token_signs_in_mail_lands_in_the_mailbox_and_its_pixel_reads_it(  # noqa: E501
    embedded: ServerProcess,
) -> None:
    # Given the first start printed a sign-in token for the demo account
    found = _TOKEN_LINE.search(embedded.log)
    assert found, embedded.log
    assert (embedded.data_dir / "beacon.sqlite3").exists()
    client = GraphQLClient(embedded.base_url, found.group(1))
    http = httpx.AsyncClient(base_url=embedded.base_url, timeout=10)
    try:
        assert (await client.execute("query { account { plan } }"))["account"]["plan"] == "PREMIUM"

        # When a task is created for a contact
        contact = await client.execute(ADD_CONTACT, {"name": "Ann", "email": "ann@example.test"})
        task = await client.execute(
            CREATE_TASK, {"title": "Try Beacon", "subscriberIds": [contact["addPerson"]["id"]]}
        )
        task_id = task["createTask"]["id"]

        # Then its email shows up in the mailbox (the catcher's store: nothing to await)
        async def one_message() -> dict[str, Any]:
            response = await http.get("/mailbox/messages.json")
            assert response.status_code == 200
            messages: list[dict[str, Any]] = response.json()
            assert len(messages) == 1, messages
            return messages[0]

        message = await eventually(one_message)
        assert message["envelope_to"] == ["ann@example.test"]
        assert "Try Beacon" in message["subject"]

        # And its page shows the HTML in a sandboxed iframe whose srcdoc holds the pixel
        page = await http.get(f"/mailbox/{message['id']}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        (srcdoc,) = _SRCDOC.findall(page.text)
        (pixel_url,) = pixel_urls(html.unescape(srcdoc))
        assert pixel_url.startswith(f"{embedded.base_url}/p/")

        status = await client.execute(TASK_STATUS, {"id": task_id})
        assert status["task"]["deliveryStatus"]["state"] == "SENT"

        # When the pixel is loaded, as the iframe in a browser would
        response = await http.get(pixel_url, headers=READ_AS_PERSON)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"

        # Then the delivery becomes READ (the open is stored a moment after the answer)
        async def read() -> None:
            status = await client.execute(TASK_STATUS, {"id": task_id})
            (delivery,) = status["task"]["deliveryStatus"]["deliveries"]
            assert delivery["state"] == "READ", delivery
            assert delivery["readAt"] is not None

        await eventually(read)

        # And the server is ready, and offers GraphiQL to a browser
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        graphiql = await http.get("/graphql", headers={"Accept": "text/html"})
        assert graphiql.status_code == 200
        assert graphiql.headers["content-type"].startswith("text/html")
        assert "graphiql" in graphiql.text.lower()

        # And the printed help points at the mailbox too
        assert f"{embedded.base_url}/mailbox" in embedded.log
    finally:
        await http.aclose()
        await client.close()


@pytest.mark.parametrize(
    "args", [[], *([name] for name in SUBCOMMANDS)], ids=["main", *SUBCOMMANDS]
)
def test_given_the_cli_when_help_is_asked_then_it_exits_0_with_a_usage(
    args: list[str], tmp_path: Path
) -> None:
    # When `python main.py [COMMAND] --help` runs
    result = run_cli({**os.environ, "DATA_DIR": str(tmp_path)}, *args, "--help")

    # Then it exits 0 and prints its usage, naming the subcommands at the top level
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python main.py"), result.stdout
    if not args:
        assert all(name in result.stdout for name in SUBCOMMANDS)
    if args == ["create-account"]:
        assert all(flag in result.stdout for flag in ("--name", "--plan", "--email"))
