"""Native ingest (`POST /api/events`) and the tracker script it serves."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from ..ingest import native
from ..ingest.request import BodyTooLarge, RequestMeta, read_body
from ..ingest.writer import record_error
from ..tracker import tracker_build
from .answer import Answer

bp = Blueprint("collect", __name__)


def _allow(origin: str | None) -> list[tuple[str, str]]:
    """The headers that let a page on `origin` read the answer."""
    return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")] if origin else []


@bp.route("/api/events", methods=["OPTIONS"])
def events_preflight() -> Response:
    """Answer CORS preflights; the POST itself checks the origin against the site's list."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers.extend(_allow(request.headers.get("Origin")))
    return response


@bp.post("/api/events")
def events() -> Response:
    return post_events(request.environ).response()


def post_events(environ: dict[str, Any]) -> Answer:
    """Store one event or a batch; 202 once committed, 4xx naming each bad field."""
    meta = RequestMeta.from_environ(environ)
    try:
        body = read_body(environ, current_app.config["MAX_BODY_BYTES"])
    except BodyTooLarge as exc:
        record_error(native.ENDPOINT, str(exc), body_size=exc.size)
        return Answer.json(413, {"error": str(exc)}, _allow(meta.origin))
    outcome = native.ingest(body, meta)
    headers: list[tuple[str, str]] = []
    if outcome.retry_after is not None:
        headers += [
            ("Retry-After", str(outcome.retry_after)),
            ("Access-Control-Expose-Headers", "Retry-After"),
        ]
    if outcome.allow_origin:
        headers += _allow(meta.origin)
    return Answer.json(outcome.status, outcome.body, headers)


@bp.get("/tracker.js")
def tracker() -> Response:
    """Serve the minified tracker (gzipped when accepted) to any origin, cached for an hour."""
    build = tracker_build()
    gzipped = request.accept_encodings.quality("gzip") > 0
    response = Response(
        build.gzipped if gzipped else build.minified, mimetype="application/javascript"
    )
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.set_etag(build.etag + ("-gz" if gzipped else ""))
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    response.make_conditional(request)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
