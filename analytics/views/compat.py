"""The three older contracts (`/benefits`, `/statistics`, `/collector`, `/track`), each path with
and without a trailing slash. Handlers only read the request and shape the reply; the rules live
in `analytics.ingest.legacy`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.wsgi import get_host

from ..ingest.legacy import Reply, benefits, collector, track
from ..ingest.legacy.site import legacy_site_id
from ..ingest.request import BodyTooLarge, read_body
from ..openapi import EXTRA_OPERATIONS
from ..stats import recorder
from .answer import Answer

bp = Blueprint("compat", __name__)


def route(paths: str | tuple[str, ...], methods: list[str]) -> Callable:
    """Register a view on each path, with and without a trailing slash (old clients use both).

    OPTIONS is answered only where a view says so (CORS preflights), so a 405 lists just the
    methods a contract has.
    """

    def register(view: Callable) -> Callable:
        for path in (paths,) if isinstance(paths, str) else paths:
            for rule in (path, path + "/"):
                bp.add_url_rule(
                    rule,
                    endpoint=view.__name__ + rule.replace("/", "_"),
                    view_func=view,
                    methods=methods,
                    provide_automatic_options=False,
                )
        return view

    return register


def _reply(reply: Reply, cors: list[tuple[str, str]]) -> Answer:
    """A POST's reply as the direct path sends it (`views/answer.py`)."""
    return Answer.json(reply.status, reply.body, [*reply.headers.items(), *cors])


def _send(reply: Reply) -> Response:
    """The same, as a Flask view returns it."""
    return _reply(reply, []).response()


# --- benefits recorder ------------------------------------------------------------------------


def _app() -> Flask:
    """The app itself, not its proxy: an ingest post reads it a dozen times, and each read
    through `current_app` costs about half a microsecond (0.02 for the app itself). Taken once
    per post, a legacy post's CPU in one process fell by about a tenth (README, Benchmarks)."""
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _recorder_allow(app: Flask) -> list[tuple[str, str]]:
    domain = app.config.get("CORS_DOMAIN") or ""
    if not domain:
        return []
    allow = [("Access-Control-Allow-Origin", domain)]
    return allow if domain == "*" else [*allow, ("Vary", "Origin")]


def _recorder_cors(response: Response) -> Response:
    response.headers.extend(_recorder_allow(_app()))
    return response


@route(("/benefits", "/statistics"), ["OPTIONS"])
def recorder_preflight() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    return _recorder_cors(response)


@route("/benefits", ["POST"])
def benefits_post() -> Response:
    return post_benefits(request.environ).response()


def post_benefits(environ: dict[str, Any]) -> Answer:
    """Store one record or a batch, all or nothing."""
    app = _app()
    try:
        body = read_body(environ, benefits.MAX_BODY_BYTES)
    except BodyTooLarge as exc:
        return _reply(benefits.too_large(app, exc.size), _recorder_allow(app))
    reply = benefits.record(app, body, environ.get("CONTENT_TYPE"), environ.get("REMOTE_ADDR"))
    return _reply(reply, _recorder_allow(app))


@route("/benefits", ["GET"])
def benefits_get() -> Response:
    """Event counts per benefit and event type since `start_at`."""
    try:
        start_at = benefits.parse_start(request.args.get("start_at"))
    except ValueError as exc:
        return _recorder_cors(_send(Reply(400, {"message": str(exc)})))
    rows = recorder.events_by_benefit(legacy_site_id(current_app), start_at)
    return _recorder_cors(_send(Reply(200, rows)))


@route("/statistics", ["GET"])
def statistics() -> Response:
    """Counts per benefit, event type, page size and position (current version only)."""
    return _recorder_cors(_send(Reply(200, recorder.statistics(legacy_site_id(current_app)))))


# --- Django collector -------------------------------------------------------------------------


def _collector_allow(app: Flask, origin: str | None) -> list[tuple[str, str]]:
    """Browsers on an allowed origin may read the answer (the old pages were same-origin)."""
    patterns = app.config.get("COLLECTOR_ALLOWED_HOSTS") or ["*"]
    if origin and collector.allowed(patterns, collector.Caller(origin=origin, host=None)):
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    return []


@route("/collector", ["OPTIONS"])
def collector_preflight() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers.extend(_collector_allow(_app(), request.headers.get("Origin")))
    return response


@route("/collector", ["GET", "PUT", "PATCH", "DELETE"])
def collector_other() -> Response:
    """Only POST sends events (the old service said 405 too)."""
    reply = Reply(405, {"error": "method not allowed: send events with POST"}, {"Allow": "POST"})
    return _send(reply)


@route("/collector", ["POST"])
def collector_post() -> Response:
    return post_collector(request.environ).response()


def post_collector(environ: dict[str, Any]) -> Answer:
    """`200 {"task": id}` for any JSON object; the event or the reason it failed is stored."""
    app = _app()
    limit = app.config["MAX_BODY_BYTES"]
    origin = environ.get("HTTP_ORIGIN")
    try:
        body = read_body(environ, limit)
    except BodyTooLarge as exc:
        reply = collector.too_large(app, exc.size, limit)
        return _reply(reply, _collector_allow(app, origin))
    caller = collector.Caller(
        origin=origin,
        host=get_host(environ),
        ip=environ.get("REMOTE_ADDR"),
        user_agent=environ.get("HTTP_USER_AGENT"),
    )
    return _reply(collector.collect(app, body, caller), _collector_allow(app, origin))


# --- FastAPI tracking demo ---------------------------------------------------------------------


ANY_ORIGIN = [("Access-Control-Allow-Origin", "*")]  # as the old demo did, on this path only


def _any_origin(response: Response) -> Response:
    response.headers.extend(ANY_ORIGIN)
    return response


@route("/track", ["OPTIONS"])
def track_preflight() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = (
        request.headers.get("Access-Control-Request-Headers") or "Content-Type"
    )[:500]
    response.headers["Access-Control-Max-Age"] = "600"
    return _any_origin(response)


@route("/track", ["POST"])
def track_post() -> Response:
    return post_track(request.environ).response()


def post_track(environ: dict[str, Any]) -> Answer:
    """`200 null` once stored; `422 {"detail": [...]}` naming each bad field."""
    app = _app()
    limit = app.config["MAX_BODY_BYTES"]
    try:
        body = read_body(environ, limit)
    except BodyTooLarge as exc:
        return _reply(track.too_large(app, exc.size, limit), ANY_ORIGIN)
    reply = track.track(app, body, environ.get("HTTP_USER_AGENT"), environ.get("REMOTE_ADDR"))
    return _reply(reply, ANY_ORIGIN)


# The POSTs that `direct` serves without Flask's request machinery (see views/direct.py).
DIRECT_POSTS = {
    path: handler
    for base, handler in (
        ("/benefits", post_benefits),
        ("/collector", post_collector),
        ("/track", post_track),
    )
    for path in (base, base + "/")
}


# --- OpenAPI: the same models that validate describe the contracts ----------------------------


def _schema_ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


_STRING = {"type": "string"}
_MESSAGE = _object(message=_STRING)
_ERROR = _object(error=_STRING)
_TRAILING = " Also served with a trailing slash."

EXTRA_OPERATIONS.extend(
    [
        (
            "/benefits",
            "post",
            [benefits.BenefitRecord],
            {
                "tags": ["Compatible: benefits recorder"],
                "summary": "Record one benefit event or a batch (all or nothing)",
                "description": "The stats recorder's contract. Numbers may be numeric strings; "
                "unknown fields and a client `created_at` are ignored; a batch shares one "
                "`group_id`. Body at most 100 kB. CORS: `CORS_DOMAIN`." + _TRAILING,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    _schema_ref(benefits.BenefitRecord),
                                    {"type": "array", "items": _schema_ref(benefits.BenefitRecord)},
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _answer("Stored", _object(response={"const": "Record created"})),
                    "422": _answer("Invalid, not JSON, or over 100 kB; nothing stored", _MESSAGE),
                },
            },
        ),
        (
            "/benefits",
            "get",
            [],
            {
                "tags": ["Compatible: benefits recorder"],
                "summary": "Event counts per benefit and event type",
                "parameters": [
                    {
                        "name": "start_at",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date"},
                        "description": "Only records created on or after this date (UTC)",
                    }
                ],
                "responses": {
                    "200": _answer(
                        "[{id, events: {event_type: count}}]",
                        {
                            "type": "array",
                            "items": _object(
                                id=_STRING,
                                events={
                                    "type": "object",
                                    "additionalProperties": {"type": "integer"},
                                },
                            ),
                        },
                    ),
                    "400": _answer("start_at is not a date", _MESSAGE),
                },
            },
        ),
        (
            "/statistics",
            "get",
            [],
            {
                "tags": ["Compatible: benefits recorder"],
                "summary": "Counts per benefit, event type, page total and position (version 2)",
                "responses": {
                    "200": _answer(
                        "Sorted by events_count descending, then benefit",
                        {
                            "type": "array",
                            "items": _object(
                                benefit=_STRING,
                                events={"type": "object"},
                                events_count={"type": "integer"},
                            ),
                        },
                    )
                },
            },
        ),
        (
            "/collector",
            "post",
            [collector.CollectorEvent],
            {
                "tags": ["Compatible: Django collector"],
                "summary": "Send one event; `{task}` comes back for any JSON object",
                "description": "Validated in the request: a valid event is stored, anything else "
                "(unknown category, bad timestamp, missing field, duplicate session_id + "
                "timestamp) is kept with its reason, and the answer is still 200 as before. "
                "Only clients matching `COLLECTOR_ALLOWED_HOSTS`." + _TRAILING,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _schema_ref(collector.CollectorEvent)}
                    },
                },
                "responses": {
                    "200": _answer("Received", _object(task=_STRING)),
                    "400": _answer("Not JSON, or not an object", _ERROR),
                    "403": _answer("Client not in COLLECTOR_ALLOWED_HOSTS", _ERROR),
                    "405": _answer("Any method but POST"),
                    "413": _answer("Body over MAX_BODY_BYTES", _ERROR),
                },
            },
        ),
        (
            "/track",
            "post",
            [track.TrackIn],
            {
                "tags": ["Compatible: tracking demo"],
                "summary": "Record one load, scroll or click",
                "description": "The FastAPI demo's contract; any origin may send." + _TRAILING,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema_ref(track.TrackIn)}},
                },
                "responses": {
                    "200": _answer("Stored; the body is `null`", {"type": "null"}),
                    "413": _answer("Body over MAX_BODY_BYTES", _object(detail=_STRING)),
                    "422": _answer(
                        "Validation error",
                        _object(
                            detail={
                                "type": "array",
                                "items": _object(loc={"type": "array"}, msg=_STRING, type=_STRING),
                            }
                        ),
                    ),
                },
            },
        ),
    ]
)
