"""The email sender keeps SMTP connections open and reuses them, within a bound."""

from __future__ import annotations

import asyncio

from channels.base import Outcome
from channels.email.mime import OutgoingEmail
from channels.email.sender import EmailSender, SmtpServer
from tests.support.smtp_sink import SmtpSink


def email(n: int, to: str = "ann@example.test") -> OutgoingEmail:
    return OutgoingEmail(
        message_id=f"<m{n}@beacon.test>",
        from_header="Beacon <notifications@beacon.test>",
        envelope_from="bounces@beacon.test",
        to=(to,),
        recipients=(to,),
        subject=f"message {n}",
        text="text",
        html="<p>html</p>",
    )


def server_of(sink: SmtpSink) -> SmtpServer:
    return SmtpServer.from_url(f"smtp://{sink.host}:{sink.port}")


async def test_many_messages_to_one_server_share_one_connection(smtp_sink: SmtpSink) -> None:
    # given
    sender = EmailSender(timeout=5, local_hostname="beacon.test")

    # when
    results = [await sender.send(email(n), server_of(smtp_sink)) for n in range(5)]
    await sender.aclose()

    # then
    assert [r[0].outcome for r in results] == [Outcome.ACCEPTED] * 5
    assert len(await smtp_sink.wait_for_messages(5)) == 5
    assert smtp_sink.connections_opened == 1


async def test_concurrent_sends_never_open_more_connections_than_the_pool_allows(
    smtp_sink: SmtpSink,
) -> None:
    # given
    sender = EmailSender(timeout=5, local_hostname="beacon.test", pool_size=2)

    # when
    results = await asyncio.gather(
        *(sender.send(email(n), server_of(smtp_sink)) for n in range(12))
    )
    await sender.aclose()

    # then
    assert all(r[0].outcome is Outcome.ACCEPTED for r in results)
    assert len(await smtp_sink.wait_for_messages(12)) == 12
    assert smtp_sink.most_open_at_once == 2
    assert smtp_sink.connections_opened == 2


async def test_a_connection_the_server_dropped_is_replaced_without_failing_the_send() -> None:
    # given: a pooled connection, then the server restarts on the same port
    sink = SmtpSink()
    await sink.start()
    port = sink.port
    sender = EmailSender(timeout=5, local_hostname="beacon.test")
    first = await sender.send(email(1), server_of(sink))
    await sink.stop()
    restarted = SmtpSink(port=port)
    await restarted.start()

    # when
    second = await sender.send(email(2), server_of(restarted))
    await sender.aclose()
    await restarted.stop()

    # then
    assert first[0].outcome is Outcome.ACCEPTED
    assert second[0].outcome is Outcome.ACCEPTED, second
    assert [m.message_id for m in restarted.messages] == ["<m2@beacon.test>"]


async def test_a_refused_recipient_leaves_the_connection_usable(smtp_sink: SmtpSink) -> None:
    # given
    sender = EmailSender(timeout=5, local_hostname="beacon.test")

    # when
    refused = await sender.send(email(1, to="reject-bob@example.test"), server_of(smtp_sink))
    accepted = await sender.send(email(2), server_of(smtp_sink))
    await sender.aclose()

    # then
    assert refused[0].code == "550"
    assert accepted[0].outcome is Outcome.ACCEPTED
    assert smtp_sink.connections_opened == 1
