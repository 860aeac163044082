"""The JS tracking demo's FastAPI contract: `POST /track`.

Answers as FastAPI did: `200` with body `null`, or `422 {"detail": [{"loc", "msg", "type"}]}`
with `loc` starting at "body". One payload is one event: name = action, path = page,
session_id, referrer from client_context.referer, props = {order, meta, _v}; browser, OS and
device come from the User-Agent (a missing one is fine: the old server crashed on it).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from flask import Flask
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from ...models import utcnow
from ..country import country_of
from ..payload import depth, from_epoch, json_size, parse_iso, parse_json, scrub
from ..useragent import parse_agent
from ..visitor import visitor_id
from ..writer import event_row, record_errors, store_events
from . import Reply, rejection
from .site import legacy_site_id

ENDPOINT = "/track"
SOURCE = "track"
ACTIONS = ("load", "scroll", "click")
MAX_META_CHARS = 8192
EPOCH_MS_FROM = 100_000_000_000  # larger epoch numbers are milliseconds (year 5138 in seconds)
_NUMBER = re.compile(r"\s*-?\d+(\.\d+)?\s*")


def parse_track_time(value: Any) -> dt.datetime:
    """ISO 8601 (zone-less is UTC) or epoch seconds or milliseconds -> naive UTC."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 string or an epoch number")
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    if isinstance(value, int | float):
        return from_epoch(value / 1000 if abs(value) >= EPOCH_MS_FROM else value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            return parse_iso(value)
        except ValueError as exc:
            raise ValueError(f"invalid datetime: {exc}") from exc
    raise ValueError("must be an ISO 8601 string or an epoch number")


class ClientContext(BaseModel):
    model_config = ConfigDict(extra="ignore")

    referer: Annotated[str, StringConstraints(max_length=2048)] | None = None


class TrackIn(BaseModel):
    """The body of `POST /track`. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=False)

    v: int = Field(alias="_v", gt=0, le=32_767, description="Payload version (positive)")
    timestamp: Annotated[
        dt.datetime,
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "number", "description": "epoch seconds, or milliseconds"},
                ]
            }
        ),
    ] = Field(description="ISO 8601 (zone-less is UTC) or epoch seconds/milliseconds")
    order: int = Field(ge=-(2**31), lt=2**31, description="Order of the event in the session")
    session_id: uuid.UUID
    page: Annotated[str, StringConstraints(max_length=2048)] | None = None
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    meta: Annotated[str, StringConstraints(max_length=MAX_META_CHARS)] | None = Field(
        None, description="A JSON-encoded string; stored parsed when it is valid JSON"
    )
    client_context: ClientContext = Field(default_factory=ClientContext)
    server_context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _time(cls, value: Any, info: ValidationInfo) -> dt.datetime:
        moment = parse_track_time(value)
        now = (info.context or {}).get("now")
        if now is not None and moment > now + (info.context or {})["max_future"]:
            raise ValueError("in the future")
        return moment

    @field_validator("server_context")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if depth(value, 4) > 3 or json_size(value) > 2048:
            raise ValueError("larger than 2 KB or nested deeper than 3 levels")
        return value


def _meta(text: str | None) -> Any:
    """The meta string parsed when it is JSON (within limits), else the string itself."""
    if text is None:
        return None
    try:
        value = parse_json(text)
    except ValueError:
        return text
    return value if depth(value, 8) <= 8 else text


def _path(page: str | None) -> str | None:
    """Keep the path of a page: its query string may hold personal data."""
    if not page:
        return None
    try:
        parts = urlsplit(page)
    except ValueError:
        return page.split("?")[0][:1024]
    return (parts.path or "/")[:1024]


def _referrer(referer: str | None) -> str | None:
    if not referer:
        return None
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:1024] if parts.netloc else None


def track_row(
    payload: TrackIn,
    site_id: int,
    *,
    user_agent: str | None,
    received_at: dt.datetime,
    visitor: str | None = None,
    source: str = SOURCE,
    dedupe_key: str | None = None,
    country: str | None = None,
) -> dict[str, Any]:
    """A validated payload -> an `events` row (also used by the importer)."""
    agent = parse_agent(user_agent)
    props: dict[str, Any] = {"order": payload.order, "meta": _meta(payload.meta), "_v": payload.v}
    if payload.server_context:
        props["server_context"] = payload.server_context
    return event_row(
        site_id=site_id,
        source=source,
        name=payload.action,
        occurred_at=payload.timestamp,
        received_at=received_at,
        session_id=str(payload.session_id),
        visitor_id=visitor,
        path=scrub(_path(payload.page)),
        referrer=scrub(_referrer(payload.client_context.referer)),
        browser=agent.browser,
        os=agent.os,
        device=agent.device,
        country=country,
        dedupe_key=dedupe_key,
        props=scrub(props),
    )


def _detail(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors in FastAPI's shape: loc starts with "body"."""
    return [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _reason(detail: list[dict[str, Any]]) -> str:
    return "; ".join(
        (".".join(str(p) for p in d["loc"][1:]) or "body") + ": " + d["msg"] for d in detail
    )


def too_large(app: Flask, size: int, limit: int) -> Reply:
    reason = f"body of {size} bytes is over the {limit}-byte limit"
    record_errors([rejection(ENDPOINT, reason, body_size=size, site_id=legacy_site_id(app))])
    return Reply(413, {"detail": reason})


def track(app: Flask, body: bytes, user_agent: str | None, ip: str | None) -> Reply:
    """Store one tracker payload, or answer 422 naming every bad field and keep it."""
    site_id = legacy_site_id(app)
    try:
        data = parse_json(body)
    except ValueError as exc:
        detail = [{"loc": ["body"], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]
        record_errors([rejection(ENDPOINT, detail[0]["msg"], body=body, site_id=site_id)])
        return Reply(422, {"detail": detail})
    now = utcnow()
    context = {
        "now": now,
        "max_future": dt.timedelta(seconds=app.config["MAX_EVENT_FUTURE_SECONDS"]),
    }
    try:
        payload = TrackIn.model_validate(data, context=context)
    except ValidationError as exc:
        detail = _detail(exc)
        row = rejection(ENDPOINT, _reason(detail), body=body, data=data, site_id=site_id)
        record_errors([row])
        return Reply(422, {"detail": detail})
    visitor = visitor_id(app, site_id, ip, user_agent)
    row = track_row(
        payload,
        site_id,
        user_agent=user_agent,
        received_at=now,
        visitor=visitor,
        country=country_of(app, ip),
    )
    store_events([row], [])
    return Reply(200, None)
