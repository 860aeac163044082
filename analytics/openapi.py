"""The OpenAPI 3.1 document of the ingest endpoints, generated from the validating models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .ingest.schema import EventIn

REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
FIELD_ERRORS = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "error": {"type": "string"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}

# Other modules (the legacy contracts) add their operations here: (path, method, models, op).
EXTRA_OPERATIONS: list[tuple[str, str, list[type[BaseModel]], dict[str, Any]]] = []


def native_operations() -> dict[str, Any]:
    body_schema = {
        "oneOf": [_ref(EventIn), {"type": "array", "items": _ref(EventIn), "maxItems": 500}]
    }
    return {
        "/api/events": {
            "post": {
                "summary": "Record one event or a batch of up to 500",
                "description": (
                    "Any content type is read as JSON (the tracker sends text/plain to avoid a "
                    "CORS preflight). Valid events are committed before the answer; invalid ones "
                    "are listed by index and kept in the rejected-payloads table. With `DNT: 1` or "
                    "`Sec-GPC: 1` nothing is stored and the answer says so."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body_schema}},
                },
                "responses": {
                    "200": _json(FIELD_ERRORS, "Do-Not-Track / GPC: nothing stored"),
                    "202": _json(
                        FIELD_ERRORS, "Stored (some batch items may be listed as rejected)"
                    ),
                    "400": _json(FIELD_ERRORS, "Not JSON, or every event invalid"),
                    "403": _json(FIELD_ERRORS, "Origin not allowed for the site"),
                    "413": _json(ERROR, "Body or batch over the limit"),
                    "503": _json(ERROR, "Database unavailable; nothing stored"),
                },
            }
        },
        "/tracker.js": {
            "get": {
                "summary": "The tracker script",
                "responses": {
                    "200": {"description": "JavaScript", "content": {"application/javascript": {}}}
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Health with the database",
                "responses": {
                    "200": _json(ERROR, "Database reachable"),
                    "503": _json(ERROR, "Database unreachable"),
                },
            }
        },
    }


@lru_cache(maxsize=1)
def build_spec() -> dict[str, Any]:
    """Assemble the document once per process."""
    models: list[type[BaseModel]] = [EventIn]
    paths = native_operations()
    for path, method, extra_models, operation in EXTRA_OPERATIONS:
        models.extend(extra_models)
        paths.setdefault(path, {})[method] = operation
    _, schemas = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(models)], ref_template=REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Analytics ingest API",
            "version": "1",
            "description": "Endpoints that receive events. Dashboards and CSV exports need a login "
            "and are not part of this document.",
        },
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }
