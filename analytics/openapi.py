"""The OpenAPI 3.1 document: the ingest endpoints, generated from the validating models, and
the stats API (`/api/v1/stats/...`), described from the constants its checks use."""

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


BEARER = "bearerAuth"
PERIOD = {
    "type": "object",
    "description": "The range answered: a preset's name or `custom`, and its first and last "
    "days (inclusive, UTC).",
    "properties": {
        "name": {"type": "string"},
        "start": {"type": "string", "format": "date"},
        "end": {"type": "string", "format": "date"},
    },
}
STATS_ERRORS = {
    "400": _json(
        {
            "type": "object",
            "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}},
        },
        "A bad parameter, named in `parameter` (and first in `error`)",
    ),
    "401": _json(ERROR, "No token, or a wrong or revoked one (with `WWW-Authenticate: Bearer`)"),
    "404": _json(ERROR, "No such site for this token"),
    "503": _json(ERROR, "Database unavailable"),
}
NUMBER = {"type": ["number", "null"]}
COUNT = {"type": "integer"}


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False):
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _envelope(results: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "site": {"type": "string"},
            "period": PERIOD,
            "filters": {
                "type": "object",
                "description": "The filters applied, as query parameters that reproduce them",
                "additionalProperties": {"type": "string"},
            },
            **extra,
            "results": results,
        },
    }


def _rows(**columns: Any) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": columns}}


def stats_operations() -> dict[str, Any]:
    """The stats API: five GETs sharing the site, period and filter parameters."""
    from .filters import PERIODS
    from .segments import EVENT_DIMENSIONS, GOAL, VISIT_DIMENSIONS
    from .stats.breakdown import DIMENSIONS
    from .views.api import INTERVALS, MAX_LIMIT

    scope = [
        _query("site", "A site's public id", {"type": "string", "maxLength": 32}, True),
        _query("period", "A preset range (default 30d); `custom` needs start or end",
               {"type": "string", "enum": list(PERIODS)}),
        _query("start", "First day (YYYY-MM-DD, UTC)", {"type": "string", "format": "date"}),
        _query("end", "Last day, inclusive (YYYY-MM-DD, UTC)",
               {"type": "string", "format": "date"}),
    ]  # fmt: skip
    filters = [
        _query(
            name,
            "A segment filter, as on the dashboards: comma-separated values mean OR, a "
            "leading `!` negates, `\\,` is a comma inside a value. `prop.KEY=VALUE` filters "
            "on an event property (up to 5).",
            {"type": "string"},
        )
        for name in (*VISIT_DIMENSIONS, GOAL, *EVENT_DIMENSIONS)
    ]

    def operation(summary: str, description: str, body: dict[str, Any], *own: Any):
        return {
            "get": {
                "tags": ["stats"],
                "summary": summary,
                "description": description,
                "security": [{BEARER: []}],
                "parameters": [*scope, *own, *filters],
                "responses": {"200": _json(body, "The numbers"), **STATS_ERRORS},
            }
        }

    change = {
        "type": "object",
        "properties": {"value": NUMBER, "previous": NUMBER, "change_pct": NUMBER},
    }
    metrics = ("visitors", "visits", "pageviews", "bounce_rate", "avg_visit_seconds")
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}
    return {
        "/api/v1/stats/summary": operation(
            "The Overview's headline numbers",
            "Visitors, visits, page views, bounce rate (%) and average visit (seconds), each "
            "with the previous period of the same length and the change in %. Numbers that "
            "cannot be computed (no visit) are null.",
            _envelope({"type": "object", "properties": {m: change for m in metrics}}),
        ),
        "/api/v1/stats/timeseries": operation(
            "Page views and visitors over time",
            "One row per bucket (its start, ISO 8601 UTC), empty buckets as zeros. Without "
            "`interval`, the bucket the Overview chooses for the range.",
            _envelope(
                _rows(
                    time={"type": "string", "format": "date-time"}, pageviews=COUNT, visitors=COUNT
                ),
                interval={"type": "string", "enum": list(INTERVALS)},
            ),  # fmt: skip
            _query("interval", "The bucket", {"type": "string", "enum": list(INTERVALS)}),
        ),
        "/api/v1/stats/breakdown": operation(
            "One dimension's table",
            "The rows of the card or CSV for `by`, most first, `value` holding the "
            "dimension's value and then that table's columns (counts as integers, `_pct` as "
            "numbers). `total_rows` counts every row before `limit`.",
            _envelope(
                {"type": "array", "items": {"type": "object"}},
                by={"type": "string"},
                limit=COUNT,
                total_rows=COUNT,
            ),
            _query("by", "A filter dimension: " + ", ".join(DIMENSIONS), {"type": "string"}, True),
            _query("limit", "Rows at most", limit),
        ),  # fmt: skip
        "/api/v1/stats/goals": operation(
            "Goal conversions",
            "Per goal of the site: visits that reached it, their % of all visits, and events.",
            _envelope(
                _rows(goal={"type": "string"}, visits=COUNT, conversion_rate=NUMBER, events=COUNT)
            ),
        ),  # fmt: skip
        "/api/v1/stats/funnel": operation(
            "A funnel",
            "Visits reaching each step in order within the visit, from the previous and the "
            "first step in %, and the drop-off.",
            _envelope(
                _rows(
                    step=COUNT,
                    label={"type": "string"},
                    visits=COUNT,
                    from_previous_pct=NUMBER,
                    from_first_pct=NUMBER,
                    dropoff=COUNT,
                ),
                steps={"type": "array", "items": {"type": "string"}},
            ),  # fmt: skip
            _query(
                "steps",
                "2 to 8 steps, comma-separated (or repeated): a goal's name, "
                "`path:/x` (`*` wildcards) or `event:name`",
                {"type": "string"},
                True,
            ),
        ),  # fmt: skip
    }


@lru_cache(maxsize=1)
def build_spec() -> dict[str, Any]:
    """Assemble the document once per process."""
    models: list[type[BaseModel]] = [EventIn]
    paths = native_operations() | stats_operations()
    for path, method, extra_models, operation in EXTRA_OPERATIONS:
        models.extend(extra_models)
        paths.setdefault(path, {})[method] = operation
    _, schemas = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(models)], ref_template=REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Analytics API",
            "version": "1",
            "description": "Endpoints that receive events, and the stats API "
            "(/api/v1/stats/..., with an API token from Settings or `flask tokens create`). "
            "Dashboards and CSV exports need a login and are not part of this document.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token: Authorization: Bearer an_...",
                }
            },
        },
    }
