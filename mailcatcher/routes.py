"""The mail catcher's inbox pages at /mailbox (plain HTML, no external assets)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mailcatcher.store import MailStore, StoredMessage

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1f2328}
h1{font-size:1.3rem}a{color:#0969da}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}
.empty{color:#656d76}
iframe{width:100%;height:32rem;border:1px solid #d0d7de;border-radius:4px}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.75rem;border-radius:4px}
"""

# The catcher shows mail written by anyone who can reach the SMTP port: our pages run
# one script of our own (local times) and nothing inline, every message text is escaped,
# and the message HTML sits in a sandboxed iframe that may not run scripts at all.
_HEADERS = {
    "Content-Security-Policy": "script-src 'self'; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
_LOCAL_TIMES = Path(__file__).resolve().parent / "local_times.js"


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
        '<script defer src="/mailbox/local-times.js"></script></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(document, status_code=status_code, headers=_HEADERS)


def _time(instant: datetime) -> str:
    """A <time> in UTC, which local_times.js shows in the viewer's own zone."""
    utc = instant.astimezone(UTC)
    return (
        f'<time datetime="{escape(utc.isoformat())}" data-local>'
        f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC</time>"
    )


def _date_header(value: str) -> str:
    """The email's Date header: as a local time where it parses, else as written."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return escape(value)
    if parsed.tzinfo is None:  # "-0000": a time with no known zone
        return escape(value)
    return _time(parsed)


_ZONE_NOTE = '<p id="time-zone" class="empty">Times are in UTC.</p>'


def mailbox_routes(store: MailStore) -> list[BaseRoute]:
    def find(request: Request) -> StoredMessage | None:
        return store.get(str(request.path_params["id"]))

    async def inbox(request: Request) -> Response:
        rows = [
            "<tr>"
            f"<td>{_time(m.received_at)}</td><td>{escape(m.from_)}</td>"
            f"<td>{escape(m.to)}</td>"
            f'<td><a href="{escape(request.url_for("mailbox_message", id=m.id).path)}">'
            f"{escape(m.subject) or '(no subject)'}</a></td>"
            "</tr>"
            for m in store.newest_first()
        ]
        table = (
            "<table><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th></tr>\n"
            + "\n".join(rows)
            + "</table>"
            if rows
            else '<p class="empty">No mail yet.</p>'
        )
        count = f"{len(rows)} message{'s' if len(rows) != 1 else ''}, newest first"
        # Back to the live dashboard, where opening a message here turns its icon "read".
        back = '<p><a href="/">&larr; Dashboard</a></p>'
        return _page("Mailbox", f"{back}<h1>Mailbox</h1><p>{count}</p>\n{_ZONE_NOTE}\n{table}")

    async def message(request: Request) -> Response:
        found = find(request)
        if found is None:
            return _page("Not found", "<h1>No such message</h1>", status_code=404)
        # (name, HTML): every value escaped, the times as <time> elements.
        headers = [
            ("From", escape(found.from_)),
            ("To", escape(found.to)),
            ("Subject", escape(found.subject)),
            ("Date", _date_header(str(found.message.get("Date", "")))),
            ("Message-ID", escape(found.message_id)),
            ("Envelope from", escape(found.envelope_from)),
            ("Envelope to", escape(", ".join(found.envelope_to))),
            ("Received", _time(found.received_at)),
        ]
        header_rows = "\n".join(
            f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in headers
        )
        parts = []
        html_body = found.body("html")
        if html_body is not None:
            # An empty sandbox: the message's images (the pixel) load, its scripts do not,
            # and it cannot reach this page. escape() makes the HTML a safe attribute value.
            parts.append(
                f'<h2>HTML</h2>\n<iframe sandbox srcdoc="{escape(html_body, quote=True)}"'
                ' title="Message HTML"></iframe>'
            )
        text_body = found.body("plain")
        if text_body is not None:
            parts.append(f"<h2>Text</h2>\n<pre>{escape(text_body)}</pre>")
        back = escape(request.url_for("mailbox").path)
        raw = escape(request.url_for("mailbox_raw", id=found.id).path)
        body = (
            f'<p><a href="{back}">&larr; Mailbox</a> &middot; <a href="{raw}">Download .eml</a></p>'
            f"<h1>{escape(found.subject) or '(no subject)'}</h1>\n{_ZONE_NOTE}\n"
            f"<table>{header_rows}</table>\n" + "\n".join(parts)
        )
        return _page(found.subject or "Message", body)

    async def raw(request: Request) -> Response:
        found = find(request)
        if found is None:
            return Response("No such message\n", status_code=404, media_type="text/plain")
        return Response(
            found.raw,
            media_type="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="{found.id}.eml"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def local_times(_: Request) -> Response:
        return FileResponse(
            _LOCAL_TIMES,
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def listing(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "id": m.id,
                    "received_at": m.received_at.isoformat(),
                    "from": m.from_,
                    "to": m.to,
                    "subject": m.subject,
                    "message_id": m.message_id,
                    "envelope_from": m.envelope_from,
                    "envelope_to": list(m.envelope_to),
                }
                for m in store.newest_first()
            ]
        )

    # The fixed and the .eml paths come first: "{id}" would also match them.
    return [
        Route("/mailbox", inbox, methods=["GET"], name="mailbox"),
        Route("/mailbox/messages.json", listing, methods=["GET"], name="mailbox_json"),
        Route("/mailbox/local-times.js", local_times, methods=["GET"], name="mailbox_script"),
        Route("/mailbox/{id}.eml", raw, methods=["GET"], name="mailbox_raw"),
        Route("/mailbox/{id}", message, methods=["GET"], name="mailbox_message"),
    ]
