"""Browser-facing protections: CSRF on dashboard forms and security headers on HTML pages.

CSRF is checked per view rather than globally: the ingest endpoints take cross-site POSTs by
design (beacons from tracked sites carry no token), while every dashboard form is served by a view
behind one of the access decorators in `analytics.auth` (or the auth blueprint), which call
`protect_form()`.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def protect_form() -> None:
    """Refuse (400) an unsafe request without a valid CSRF token, unless CSRF is switched off."""
    if request.method in SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    csrf.protect()


def add_html_headers(response: Response) -> Response:
    """Add the security headers to HTML responses; a view may set its own policy first."""
    if response.mimetype == "text/html":
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    # Checked per view (see the module docstring), so not on every POST of the app.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)
    app.after_request(add_html_headers)
