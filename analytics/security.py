"""Browser-facing protections: CSRF on dashboard forms, security headers on HTML pages, and
query strings and forms made storable before any view reads them.

CSRF is checked on every unsafe request, so a new form is protected without anyone remembering
to; only the ingest blueprints are exempt (`exempt`), since tracked sites post to them cross-site
by design and carry no token, and the stats API, which reads only and takes a bearer token, never
a cookie (`sessionless`).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Request, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.datastructures import ImmutableMultiDict

from .ingest.payload import clean_text

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


def clean_inputs() -> None:
    """Replace NUL characters and lone surrogates in query parameters and form fields (names
    and values) as ingest does with what it stores: PostgreSQL refuses NUL in text, and a
    filter value carrying one used to fail its query (a 503, the error of a database that is
    down). Cleaned, such a value compares like any other and matches what ingest stored."""
    for name in ("args", "form"):
        found = getattr(request, name)
        if any(_dirty(k) or _dirty(v) for k, v in found.items(multi=True)):
            cleaned = ImmutableMultiDict(
                (clean_text(k), clean_text(v)) for k, v in found.items(multi=True)
            )
            setattr(request, name, cleaned)


def _dirty(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text)


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.session_interface = PublicAwareSessionInterface()
    app.before_request(clean_inputs)
    app.after_request(add_html_headers)


def exempt(*blueprints: Blueprint) -> None:
    """Take ingest blueprints out of the CSRF check (their callers are other sites)."""
    for blueprint in blueprints:
        csrf.exempt(blueprint)


class PublicAwareSessionInterface(SecureCookieSessionInterface):
    """No session at all on public endpoints, whose answers never depend on a login.

    Their requests skip the cookie's signature check, and their answers carry no
    `Vary: Cookie` (which Flask adds whenever a session is read, and Flask-Login reads it after
    every request): shared caches can then serve one `/tracker.js` to everyone.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path in app.extensions.get("analytics.public_paths", ()):
            return None  # Flask then uses a null session, and never saves it
        return super().open_session(app, request)


def public(app: Flask, *blueprints: Blueprint) -> None:
    """Mark blueprints whose answers are the same for every visitor, logged in or not.

    Call after registering them: their fixed paths are read off the URL map.
    """
    names = {f"{b.name}." for b in blueprints}
    paths = app.extensions.setdefault("analytics.public_paths", set())
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(tuple(names)) and not rule.arguments:
            paths.add(rule.rule)


def sessionless(app: Flask, *blueprints: Blueprint) -> None:
    """Open no session on these blueprints' fixed paths, whose callers authenticate otherwise
    (the stats API's bearer token): a browser's login cookie must never stand in for a token.

    Call after registering them. Their answers still vary by caller: they set their own
    Cache-Control.
    """
    public(app, *blueprints)
