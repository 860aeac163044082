"""One place that maps errors to HTTP: JSON for API paths, HTML for pages."""

from __future__ import annotations

import psycopg
from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from .extensions import db
from .ingest.writer import StoreFailed

API_PREFIXES = ("/api/", "/benefits", "/statistics", "/collector", "/track", "/healthz")
# What a client hears when its events could not be stored: it keeps them and retries.
UNAVAILABLE = "the database is unavailable; nothing was stored, retry later"
RETRY_AFTER = "5"
# A "come back later" is readable by a page on any origin (it says nothing about the site), so
# that the tracker, cross-origin by nature, can honour Retry-After instead of guessing.
RETRY_HEADERS = {
    "Retry-After": RETRY_AFTER,
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
}
# What stops a write: the group's own failure, or the database, through SQLAlchemy or (on the
# raw connections of the ingest path) psycopg itself.
DATABASE_ERRORS = (OperationalError, DBAPIError, StoreFailed, psycopg.Error)


def wants_json() -> bool:
    return (
        request.path.startswith(API_PREFIXES) or request.accept_mimetypes.best == "application/json"
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            response = jsonify(error=exc.description or exc.name)
            response.status_code = exc.code or 500
            if exc.code == 405 and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    @app.errorhandler(StoreFailed)
    def database_unavailable(exc: Exception):
        # Nothing was acknowledged: the client keeps the event and may retry.
        db.session.rollback()
        app.logger.error("database error on %s: %s", request.path, exc)
        if wants_json():
            response: Response = jsonify(error=UNAVAILABLE)
        else:
            response = Response(render_template("error.html", code=503, message=UNAVAILABLE))
        response.status_code = 503
        response.headers.update(RETRY_HEADERS)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify(error="internal error"), 500
        return render_template("error.html", code=500, message="Something went wrong."), 500
