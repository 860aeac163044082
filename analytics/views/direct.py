"""The ingest POSTs, answered straight from WSGI without Flask's request machinery.

They are the app's hottest path, and none of that machinery applies to them: no session, no
login, no CSRF (other sites post here by design), no HTML headers, one fixed path each. Skipping
URL matching, the request context and its hooks takes about a third of the CPU of a request off
(see the README's ingest benchmark). Reading the environ itself instead of a werkzeug request,
answering with plain values (`views/answer.py`) and taking the client's address from
X-Forwarded-For here rather than through ProxyFix took 18 % of what was left off a single
event's instructions (802,167 to 659,055, `python -m bench instructions`). The
handlers are the very functions the Flask routes call, so tests through either path test the
same code; this module only dispatches, and maps a failure to the same JSON answers as
`errors.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from flask.ctx import AppContext
from flask.globals import _cv_app

from ..errors import DATABASE_ERRORS, RETRY_HEADERS, UNAVAILABLE
from ..extensions import db
from ..ingest.request import forwarded_for
from ..rollups.background import ensure_started
from . import collect, compat
from .answer import Answer

Handler = Callable[[dict[str, Any]], Answer]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DirectIngest:
    """WSGI middleware: POSTs to an ingest path go to their handler, everything else to Flask.

    It is the outermost layer: behind `proxies` reverse proxies (PROXY_COUNT), it sets the
    client's address itself, as the ProxyFix that wraps the Flask app does for the other paths.
    """

    def __init__(self, app: Flask, wrapped: WSGIApp, proxies: int = 0) -> None:
        self.app = app
        self.wrapped = wrapped
        self.proxies = proxies
        self.routes: dict[str, Handler] = {"/api/events": collect.post_events}
        self.routes.update(compat.DIRECT_POSTS)
        self._local = threading.local()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handler = self.routes.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return self.wrapped(environ, start_response)
        if self.proxies:
            environ["REMOTE_ADDR"] = forwarded_for(environ, self.proxies)
        answer = self.answer(handler, environ)
        start_response(answer.status_line(), answer.wsgi_headers())
        return [answer.body]

    def answer(self, handler: Handler, environ: dict[str, Any]) -> Answer:
        app = self.app
        path = environ.get("PATH_INFO")
        token = _cv_app.set(self._context())
        try:
            ensure_started(app)
            return handler(environ)
        except DATABASE_ERRORS as exc:
            # Nothing was acknowledged: the client keeps its events and may retry.
            app.logger.error("database error on %s: %s", path, exc)
            return Answer.json(503, {"error": UNAVAILABLE}, RETRY_HEADERS.items())
        except Exception:
            app.logger.exception("unhandled error on %s", path)
            return Answer.json(500, {"error": "internal error"})
        finally:
            # What a popped context's teardown would do that matters here: a session a handler
            # opened (a cache miss, a rejection recorded) gives its connection back.
            db.session.remove()
            _cv_app.reset(token)

    def _context(self) -> AppContext:
        """This request thread's application context, made once and made current per post.

        `app.app_context()` pushed and popped per post, with its signals and teardown
        functions, cost 3.7 us; setting and resetting the current context costs 0.25 (in one
        process without the database, with the writer's engine looked up once: a `/collector`
        post 43-44 us against 50-54; README, Benchmarks, 2026-12-05, night). The handlers keep
        nothing in `g`, and their database session is removed after each post, as the teardown
        removed it. A context is never shared between threads, so neither is its session's
        scope.
        """
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self.app.app_context()
        return ctx
