"""The mail catcher's inbox pages at /mailbox (plain HTML, no external assets)."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
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

# The catcher shows mail written by anyone who can reach the SMTP port: our own pages
# run no script at all, and the message HTML sits in a sandboxed iframe.
_HEADERS = {"Content-Security-Policy": "script-src 'none'; object-src 'none'"}


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(document, status_code=status_code, headers=_HEADERS)


def _time(message: StoredMessage) -> str:
    return message.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def mailbox_routes(store: MailStore) -> list[BaseRoute]:
    def find(request: Request) -> StoredMessage | None:
        return store.get(str(request.path_params["id"]))

    async def inbox(request: Request) -> Response:
        rows = [
            "<tr>"
            f"<td>{escape(_time(m))}</td><td>{escape(m.from_)}</td>"
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
        return _page("Mailbox", f"{back}<h1>Mailbox</h1><p>{count}</p>\n{table}")

    async def message(request: Request) -> Response:
        found = find(request)
        if found is None:
            return _page("Not found", "<h1>No such message</h1>", status_code=404)
        headers = [
            ("From", found.from_),
            ("To", found.to),
            ("Subject", found.subject),
            ("Date", str(found.message.get("Date", ""))),
            ("Message-ID", found.message_id),
            ("Envelope from", found.envelope_from),
            ("Envelope to", ", ".join(found.envelope_to)),
            ("Received", _time(found)),
        ]
        header_rows = "\n".join(
            f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in headers
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
            f"<h1>{escape(found.subject) or '(no subject)'}</h1>\n"
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
            headers={"Content-Disposition": f'attachment; filename="{found.id}.eml"'},
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
        Route("/mailbox/{id}.eml", raw, methods=["GET"], name="mailbox_raw"),
        Route("/mailbox/{id}", message, methods=["GET"], name="mailbox_message"),
    ]
