"""GraphiQL at `/graphql` (a browser's GET), served from this server's own files.

Strawberry's built-in page loads React and GraphiQL from a CDN, so it is blank on a
machine without internet access. This page is web/static/graphiql/index.html with the
copies under web/static/vendor/ (see its README: versions, licences, how to update).
"""

from __future__ import annotations

from starlette.responses import FileResponse, Response

from web.dashboard import STATIC_DIR

PAGE = STATIC_DIR / "graphiql" / "index.html"

# As strict as the dashboard's for scripts: this server only, nothing inline. Styles also
# allow 'unsafe-inline' because GraphiQL's dialogs (Radix, react-remove-scroll) insert a
# <style> element when they open; its fonts and icons are data: URLs in its stylesheet.
# 'self' covers the page's own ws:// origin in every browser GraphiQL 3 runs in.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def graphiql_page() -> Response:
    return FileResponse(PAGE, media_type="text/html", headers=PAGE_HEADERS)
