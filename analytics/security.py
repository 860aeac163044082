"""Browser-facing protections: CSRF on dashboard forms and security headers on HTML pages.

CSRF is checked on every unsafe request, so a new form is protected without anyone remembering
to; only the ingest blueprints are exempt (`exempt`), since tracked sites post to them cross-site
by design and carry no token.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
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


def add_html_headers(response: Response) -> Response:
    """Add the security headers to HTML responses; a view may set its own policy first."""
    if response.mimetype == "text/html":
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.session_interface = PublicAwareSessionInterface()
    app.after_request(add_html_headers)


def exempt(*blueprints: Blueprint) -> None:
    """Take ingest blueprints out of the CSRF check (their callers are other sites)."""
    for blueprint in blueprints:
        csrf.exempt(blueprint)


class PublicAwareSessionInterface(SecureCookieSessionInterface):
    """Drop `Vary: Cookie` from public endpoints, whose answers never depend on a login.

    Flask-Login reads the session after every request, which makes Flask add `Vary: Cookie`
    everywhere; on `/tracker.js` that would stop shared caches from serving one copy to all.
    """

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        super().save_session(app, session, response)
        if request.blueprint in app.extensions.get("analytics.public", ()) and not session.modified:
            vary = [value for value in response.vary if value.lower() != "cookie"]
            if vary:
                response.headers["Vary"] = ", ".join(vary)
            else:
                response.headers.pop("Vary", None)


def public(app: Flask, *blueprints: Blueprint) -> None:
    """Mark blueprints whose answers are the same for every visitor, logged in or not."""
    app.extensions.setdefault("analytics.public", set()).update(b.name for b in blueprints)
