"""The Django event collector contract: `POST /collector`.

The old service answered `200 {"task": id}` to any JSON object and validated later in a queue,
losing what failed. We validate in the request instead and keep the old answer: a valid event is
stored; anything else is stored in event_errors with the reason (unknown category, bad timestamp,
missing field, duplicate (session_id, timestamp)). Honest errors only where the old service
crashed or silently lost the body: not JSON or not an object (400), too large (413), and a
client outside `COLLECTOR_ALLOWED_HOSTS` (403).

A duplicate is found by the database: occurred_at = the timestamp and dedupe_key = a hash of the
session id, under the events table's unique (site_id, occurred_at, dedupe_key) index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from flask import Flask
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import select

from ...extensions import db
from ...models import Category, utcnow
from ..country import country_of
from ..payload import depth, json_size, parse_iso, parse_json, scrub
from ..visitor import visitor_id
from ..writer import event_row, record_errors, store_events
from . import Reply, rejection, summary
from .site import legacy_site_id

ENDPOINT = "/collector"
SOURCE = "collector"
MAX_DATA_BYTES = 32 * 1024
MAX_DATA_DEPTH = 10
MAX_TIME_CHARS = 64

Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def parse_collector_time(value: str) -> dt.datetime:
    """ISO 8601 with a space or a T; a time without a zone is UTC. Returns naive UTC."""
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ValueError(
            f"invalid timestamp format {value[:64]!r}: expected ISO 8601, "
            "e.g. 2021-01-01 09:15:27.243860"
        ) from exc


def _collector_time(value: Any) -> dt.datetime:
    """The timestamp field: a string of at most MAX_TIME_CHARS, read once, here (the row takes
    the time this returns). Errors as pydantic words them for a string field."""
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if len(value) > MAX_TIME_CHARS:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters",
            {"max_length": MAX_TIME_CHARS},
        )
    return parse_collector_time(value)


class CollectorEvent(BaseModel):
    """The body of `POST /collector`. Extra fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    session_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    category: Text100 = Field(description="Must be one of the categories added by an admin")
    name: Text100
    data: dict[str, Any] = Field(
        description=f"Free-form event data: at most {MAX_DATA_BYTES // 1024} KB as JSON, "
        f"{MAX_DATA_DEPTH} levels"
    )
    timestamp: Annotated[
        dt.datetime,
        BeforeValidator(_collector_time),
        WithJsonSchema({"type": "string", "format": "date-time", "maxLength": MAX_TIME_CHARS}),
    ] = Field(description="ISO 8601, e.g. `2021-01-01 09:15:27.243860`; without a zone it is UTC")

    @field_validator("data")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if depth(value, MAX_DATA_DEPTH + 1) > MAX_DATA_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DATA_DEPTH} levels")
        if json_size(value) > MAX_DATA_BYTES:
            raise ValueError(f"larger than {MAX_DATA_BYTES} bytes as JSON")
        return scrub(value)


def dedupe_key(session_id: str) -> str:
    """Same session and same timestamp = same event, as in the old unique constraint."""
    return hashlib.sha256(f"collector:{session_id}".encode()).hexdigest()[:64]


def event_from(
    event: CollectorEvent,
    site_id: int,
    *,
    source: str = SOURCE,
    received_at: dt.datetime | None = None,
    visitor: str | None = None,
    country: str | None = None,
) -> dict[str, Any]:
    """A validated collector event -> an `events` row (also used by the importer)."""
    return event_row(
        site_id=site_id,
        source=source,
        name=scrub(event.name),
        category=scrub(event.category),
        session_id=scrub(event.session_id),
        visitor_id=visitor,
        occurred_at=event.timestamp,
        received_at=received_at or utcnow(),
        dedupe_key=dedupe_key(event.session_id),
        country=country,
        props=event.data or None,
    )


# --- trusted clients ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """What the allowed-hosts rule reads from a request."""

    origin: str | None
    host: str | None
    ip: str | None = None  # only hashed into the visitor id and looked up, never stored
    user_agent: str | None = None


def _hostname(value: str | None, *, url: bool) -> str | None:
    if not value:
        return None
    try:
        parts = urlsplit(value if url else f"//{value}")
        return (parts.hostname or "").lower().rstrip(".") or None
    except ValueError:
        return None


def _matches(host: str, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    if pattern == "*":
        return True
    if "://" in pattern:
        pattern = _hostname(pattern, url=True) or ""
    if pattern.startswith("."):
        return host == pattern[1:] or host.endswith(pattern)
    return host == pattern


def allowed(patterns: list[str], caller: Caller) -> bool:
    """The Origin's host when the request has one (a browser), else the Host header's.

    Patterns as Django's ALLOWED_HOSTS: `*` (anyone), `example.org`, `.example.org` (it and its
    subdomains); a full origin such as `https://example.org` is read as its host.
    """
    if not patterns or "*" in patterns:
        return True
    host = (
        _hostname(caller.origin, url=True) if caller.origin else _hostname(caller.host, url=False)
    )
    return host is not None and any(_matches(host, p) for p in patterns)


# --- the endpoint -----------------------------------------------------------------------------


CATEGORY_SECONDS = 30.0  # as the site cache: a removed category is refused within this time


def known_category(app: Flask, name: str) -> bool:
    """Whether the category exists; found ones are cached per process (misses always ask)."""
    cache: dict[str, float] = app.extensions.setdefault("analytics.categories", {})
    now = time.monotonic()
    if now - cache.get(name, -CATEGORY_SECONDS) < CATEGORY_SECONDS:
        return True
    with db.engine.connect() as conn:
        found = conn.execute(select(Category.id).where(Category.name == name)).first()
    if found is not None:
        if len(cache) > 1000:
            cache.clear()
        cache[name] = now
    return found is not None


def too_large(app: Flask, size: int, limit: int) -> Reply:
    reason = f"body of {size} bytes is over the {limit}-byte limit"
    record_errors([rejection(ENDPOINT, reason, body_size=size, site_id=legacy_site_id(app))])
    return Reply(413, {"error": reason})


def collect(app: Flask, body: bytes, caller: Caller) -> Reply:
    """Store a valid event, or the reason it is not one; answer as the old collector did."""
    site_id = legacy_site_id(app)
    if not allowed(app.config.get("COLLECTOR_ALLOWED_HOSTS") or ["*"], caller):
        who = caller.origin or caller.host or "unknown"
        reason = f"client {who[:200]!r} is not in COLLECTOR_ALLOWED_HOSTS"
        record_errors([rejection(ENDPOINT, reason, body=body, site_id=site_id)])
        return Reply(403, {"error": "this client is not allowed to send events"})
    try:
        data = parse_json(body)
    except ValueError as exc:
        reason = f"body is not valid JSON: {exc}"
        record_errors([rejection(ENDPOINT, reason, body=body, site_id=site_id)])
        return Reply(400, {"error": reason})
    if not isinstance(data, dict):
        reason = "body must be a JSON object"
        record_errors([rejection(ENDPOINT, reason, body=body, data=data, site_id=site_id)])
        return Reply(400, {"error": reason})

    def refuse(reason: str, conn: Any = None) -> Reply:
        row = rejection(ENDPOINT, reason, body=body, data=data, site_id=site_id)
        record_errors([row], conn)
        return Reply(200, {"task": str(uuid.uuid4())})

    try:
        event = CollectorEvent.model_validate(data)
    except ValidationError as exc:
        return refuse(summary(exc))
    visitor = visitor_id(app, site_id, caller.ip, caller.user_agent)
    row = event_from(event, site_id, visitor=visitor, country=country_of(app, caller.ip))
    if not known_category(app, row["category"]):
        return refuse("Category not found")
    # The single write path (grouped with concurrent requests on PostgreSQL); a duplicate is
    # recorded with its reason once the database has said so.
    if store_events([row]) == 0:
        return refuse(
            f"duplicate: an event with session_id {event.session_id!r} and timestamp "
            f"{data['timestamp']!r} is already stored"
        )
    return Reply(200, {"task": str(row["id"])})
