"""Native ingest (`POST /api/events`) and the tracker script it serves."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request
from werkzeug.wrappers import Request

from ..ingest import native
from ..ingest.request import BodyTooLarge, RequestMeta, read_body
from ..ingest.writer import record_error
from ..tracker import tracker_build

bp = Blueprint("collect", __name__)


def _cors(response: Response, origin: str | None) -> Response:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


@bp.route("/api/events", methods=["OPTIONS"])
def events_preflight() -> Response:
    """Answer CORS preflights; the POST itself checks the origin against the site's list."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    return _cors(response, request.headers.get("Origin"))


@bp.post("/api/events")
def events() -> Response:
    return post_events(request)


def post_events(req: Request) -> Response:
    """Store one event or a batch; 202 once committed, 4xx naming each bad field."""
    meta = RequestMeta.from_request(req)
    try:
        body = read_body(req, current_app.config["MAX_BODY_BYTES"])
    except BodyTooLarge as exc:
        record_error(native.ENDPOINT, str(exc), body_size=exc.size)
        response = Response(json.dumps({"error": str(exc)}), 413, mimetype="application/json")
        return _cors(response, meta.origin)
    outcome = native.ingest(body, meta)
    # The hottest path of the app: json.dumps straight into a Response (not Flask's provider),
    # its headers given whole (each one set apart is parsed and checked again).
    headers: list[tuple[str, str]] = []
    if outcome.retry_after is not None:
        headers += [
            ("Retry-After", str(outcome.retry_after)),
            ("Access-Control-Expose-Headers", "Retry-After"),
        ]
    if outcome.allow_origin and meta.origin:
        headers += [("Access-Control-Allow-Origin", meta.origin), ("Vary", "Origin")]
    return Response(
        json.dumps(outcome.body), outcome.status, headers, content_type="application/json"
    )


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
