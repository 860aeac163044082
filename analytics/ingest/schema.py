"""The native event schema: every field typed and capped, validated before anything is stored.

The same pydantic models produce the OpenAPI document (`analytics/openapi.py`), so the published
description and the checks cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .payload import from_epoch, parse_iso

MAX_PROPS = 32
MAX_PROPS_DEPTH = 3
MAX_PROPS_BYTES = 4096

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Scalar = StrictBool | StrictInt | StrictFloat | Annotated[str, StringConstraints(max_length=500)]


def parse_timestamp(value: Any) -> dt.datetime:
    """ISO 8601 (a zone-less one is UTC) or epoch milliseconds -> naive UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        return from_epoch(value / 1000)
    if isinstance(value, str) and len(value) <= 40:
        try:
            return parse_iso(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
    raise ValueError("must be an ISO 8601 string or epoch milliseconds")


MAX_AGE_MS = 7 * 24 * 3600 * 1000  # a week; MAX_EVENT_AGE_DAYS refuses older ones anyway
MINUTE = dt.timedelta(minutes=1)


def utcnow_naive() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def sender_time(ts: dt.datetime | None, age_ms: float, now: dt.datetime) -> dt.datetime:
    """When an event happened, on the server's clock, from its age (and the sender's `ts`).

    Without `ts`: now - age. With it, `ts` moved by the sender's clock error rounded to the whole
    minute: a resend of the same event (same `ts`, a later `age`, another network delay) lands on
    the very same time, which is what lets the database store it once; a visitor whose clock is
    6 minutes fast, or an hour behind, is corrected to within 30 seconds. A clock that is right
    (an error of a network delay) is not moved at all.
    """
    made = now - dt.timedelta(milliseconds=max(age_ms, 0))
    if ts is None:
        return made
    return ts + round((made - ts) / MINUTE) * MINUTE


def check_event_time(moment: dt.datetime, info: ValidationInfo) -> dt.datetime:
    """Reject times outside the accepted window given in the validation context."""
    ctx = info.context or {}
    now: dt.datetime | None = ctx.get("now")
    if now is None:
        return moment
    max_age = ctx.get("max_age")
    if max_age is not None and moment < now - max_age:
        raise ValueError(f"older than the accepted {max_age.days} days")
    if moment > now + ctx.get("max_future", dt.timedelta(minutes=5)):
        raise ValueError("in the future")
    return moment


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class Item(BaseModel):
    """An item shown in a list: which one, where, and how long the list was."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    position: Annotated[int, Field(ge=1, le=10_000, strict=True)] = Field(
        description="1-based position in the list"
    )
    list_size: Annotated[int, Field(ge=1, le=10_000, strict=True)]

    @model_validator(mode="after")
    def _position_within_list(self) -> Item:
        if self.position > self.list_size:
            raise ValueError("position is greater than list_size")
        return self


class EventIn(BaseModel):
    """One event sent to `POST /api/events`."""

    model_config = ConfigDict(extra="forbid", str_max_length=2048)

    site: Id = Field(description="The site's public id (from its script tag)")
    name: Name = Field(description="What happened: pageview, click, scroll, or your own name")
    # A negative age (the visitor's clock set back between two of the tab's pages) counts as 0:
    # refusing it would lose the event.
    age: Annotated[float, Field(ge=-MAX_AGE_MS, le=MAX_AGE_MS, strict=True)] | None = Field(
        None,
        description="Milliseconds since it happened, by the sender's monotonic clock, as the "
        "tracker sends it. Alone: the time is the server's receipt time minus age. With ts: ts "
        "moved by the sender's clock error (now - age - ts) rounded to the whole minute, so a "
        "resend keeps the same time (and is stored once) and a wrong clock is corrected.",
    )
    ts: Annotated[
        Any,
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "string", "format": "date-time", "maxLength": 40},
                    {"type": "number", "description": "epoch milliseconds"},
                ]
            }
        ),
    ] = Field(
        None,
        validate_default=True,  # so that an `age` alone still sets it
        description="When it happened: ISO 8601 or epoch milliseconds; default now. "
        "Older than MAX_EVENT_AGE_DAYS or over 5 minutes ahead is rejected.",
    )
    url: Url | None = Field(None, description="Page URL; only its path and utm_* are kept")
    path: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        None, description="Page path, when no url is given"
    )
    referrer: Url | None = None
    session: Id | None = Field(None, description="Per-tab session id made by the tracker")
    eid: Id | None = Field(
        None, description="Client event id; a resend with the same id is stored once"
    )
    category: Annotated[str, StringConstraints(max_length=100)] | None = None
    item: Item | None = Field(None, description="For list impressions and clicks")
    screen: Annotated[int, Field(ge=0, le=100_000, strict=True)] | None = Field(
        None, description="Screen width in CSS pixels"
    )
    lang: Annotated[str, StringConstraints(max_length=35)] | None = None
    props: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Any] | None = Field(
        None,
        description=f"Custom properties: at most {MAX_PROPS} keys, {MAX_PROPS_DEPTH} levels deep, "
        f"{MAX_PROPS_BYTES} bytes as JSON; strings up to 500 characters",
    )

    @field_validator("ts")
    @classmethod
    def _valid_time(cls, value: Any, info: ValidationInfo) -> Any:
        """Parse `ts`, settle it with `age` (declared first, so already checked), check it."""
        moment = None if value is None else parse_timestamp(value)
        age = info.data.get("age")
        if age is not None:
            now = (info.context or {}).get("now") or utcnow_naive()
            moment = sender_time(moment, age, now)
        return None if moment is None else check_event_time(moment, info)

    @field_validator("props")
    @classmethod
    def _bounded_props(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > MAX_PROPS:
            raise ValueError(f"more than {MAX_PROPS} properties")
        if _depth(value) > MAX_PROPS_DEPTH:
            raise ValueError(f"nested deeper than {MAX_PROPS_DEPTH} levels")
        if len(json.dumps(value)) > MAX_PROPS_BYTES:
            raise ValueError(f"larger than {MAX_PROPS_BYTES} bytes")
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 500:
                raise ValueError(f"{key}: string longer than 500 characters")
        return value
