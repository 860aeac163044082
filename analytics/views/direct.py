"""The ingest POSTs, answered straight from WSGI without Flask's request machinery.

They are the app's hottest path, and none of that machinery applies to them: no session, no
login, no CSRF (other sites post here by design), no HTML headers, one fixed path each. Skipping
URL matching, the request context and its hooks takes about a third of the CPU of a request off
(see the README's ingest benchmark). The handlers are the very functions the Flask routes call,
so tests through either path test the same code; this module only dispatches, and maps a failure
to the same JSON answers as `errors.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.wrappers import Request, Response

from ..errors import DATABASE_ERRORS, RETRY_HEADERS, UNAVAILABLE
from ..rollups.background import ensure_started
from . import collect, compat

Handler = Callable[[Request], Response]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json(status: int, body: dict[str, Any], **headers: str) -> Response:
    return Response(json.dumps(body), status, headers, mimetype="application/json")


class DirectIngest:
    """WSGI middleware: POSTs to an ingest path go to their handler, everything else to Flask."""

    def __init__(self, app: Flask, wrapped: WSGIApp) -> None:
        self.app = app
        self.wrapped = wrapped
        self.routes: dict[str, Handler] = {"/api/events": collect.post_events}
        self.routes.update(compat.DIRECT_POSTS)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handler = self.routes.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return self.wrapped(environ, start_response)
        response = self.answer(handler, Request(environ))
        # A complete JSON body with its length: handed to the server as it is, without the
        # generic WSGI steps of a werkzeug response (header fix-ups, a closing iterator).
        start_response(response.status, response.headers.to_wsgi_list())
        return [response.get_data()]

    def answer(self, handler: Handler, request: Request) -> Response:
        app = self.app
        with app.app_context():  # its teardown ends the database session, as a request's does
            ensure_started(app)
            try:
                return handler(request)
            except DATABASE_ERRORS as exc:
                # Nothing was acknowledged: the client keeps its events and may retry.
                app.logger.error("database error on %s: %s", request.path, exc)
                return _json(503, {"error": UNAVAILABLE}, **RETRY_HEADERS)
            except Exception:
                app.logger.exception("unhandled error on %s", request.path)
                return _json(500, {"error": "internal error"})
