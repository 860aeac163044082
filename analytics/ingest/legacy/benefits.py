"""The benefits-simulator stats recorder contract: `POST /benefits`, `GET /benefits`, `/statistics`.

A record says that a benefit (an aid) shown at position `benefit_index` of a results page of
`page_total` benefits was seen or acted on (`event_type`). It is stored as one event: name =
event_type, item_id = benefit_id, item_position = benefit_index, list_size = page_total,
visitor_id = hash_id, schema_version = version, props = {group_id, abtesting}.

A batch is all-or-nothing: every record is validated before one transaction stores them all (the
old server could store half a batch). The read side groups in SQL and nests in Python.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

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

from ...models import utcnow
from ..country import country_of
from ..payload import depth, parse_iso, parse_json, scrub
from ..writer import event_row, record_errors, store_events
from . import Reply, rejection, summary
from .site import legacy_site_id

ENDPOINT = "/benefits"
SOURCE = "benefits"
MAX_BODY_BYTES = 100 * 1024  # the old server's body-parser limit
CURRENT_VERSION = 2  # what a record without `version` is; /statistics reads only this version

# Every event_type the recorder accepts. Add a new one here and nowhere else.
EVENT_TYPES: tuple[str, ...] = (
    "show",
    "showDetails",
    "showDetailsFromGroupPage",
    "form",
    "instructions",
    "link",
    "msa",
    "show-locations",
    "link-ineligible",
    "show-unexpected",
    "show-unexpected-amount-link",
    "close",
    "teleservice",
    "teleservicePrefill",
    "retour-logement",
    "simulation-caf",
    "email",
)

CREATED = {"response": "Record created"}
_DIGITS = re.compile(r"\s*[+-]?\d{1,9}\s*")


def _whole_number(value: Any) -> Any:
    """Accept 4, 4.0 and "4" (the real client sends numbers as strings); refuse anything else."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError("must be a whole number or a string of digits")


def _number(low: int, high: int, description: str) -> Any:
    schema = {
        "oneOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": r"^\s*\d+\s*$"},
        ],
        "description": description,
    }
    return Annotated[
        int, BeforeValidator(_whole_number), Field(ge=low, le=high), WithJsonSchema(schema)
    ]


Position = _number(1, 10_000, "1-based position of the benefit on the results page")
PageTotal = _number(1, 10_000, "number of benefits on the results page")
Version = _number(1, 32_767, "record format version; 2 when not given")
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


def _default_show(value: Any) -> Any:
    return "show" if value is None else value


class BenefitRecord(BaseModel):
    """One record of `POST /benefits`. Unknown fields (and a client `created_at`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    benefit_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The benefit's identifier"
    )
    hash_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The visitor's id (by default the Matomo id)"
    )
    benefit_index: Position
    page_total: PageTotal
    event_type: Annotated[EventType, BeforeValidator(_default_show)] = Field(
        "show", description="What happened; `show` when not given"
    )
    version: Version | None = None
    abtesting: dict[Annotated[str, StringConstraints(max_length=64)], Any] | None = Field(
        None, description="A/B test variants the visitor saw: at most 20 keys, 2 KB"
    )

    @field_validator("abtesting")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > 20:
            raise ValueError("more than 20 entries")
        if depth(value, 4) > 3 or len(repr(value)) > 2048:
            raise ValueError("larger than 2 KB or nested deeper than 3 levels")
        return scrub(value)


def record_row(
    record: BenefitRecord,
    site_id: int,
    group_id: str | None,
    *,
    created_at: dt.datetime,
    received_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    source: str = SOURCE,
    default_version: int = CURRENT_VERSION,
    country: str | None = None,
) -> dict[str, Any]:
    """One validated record -> one `events` row (also used by the importer)."""
    props: dict[str, Any] = {} if group_id is None else {"group_id": group_id}
    if record.abtesting:
        props["abtesting"] = record.abtesting
    return event_row(
        site_id=site_id,
        source=source,
        name=record.event_type,
        occurred_at=created_at,
        received_at=received_at or created_at,
        item_id=scrub(record.benefit_id),
        item_position=record.benefit_index,
        list_size=record.page_total,
        visitor_id=scrub(record.hash_id),
        schema_version=record.version if record.version is not None else default_version,
        dedupe_key=dedupe_key,
        country=country,
        props=props or None,
    )


def _is_json(content_type: str | None) -> bool:
    mimetype = (content_type or "").split(";")[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _refuse(reason: str, site_id: int, body: bytes, data: Any = None) -> Reply:
    record_errors([rejection(ENDPOINT, reason, body=body, data=data, site_id=site_id)])
    return Reply(422, {"message": reason})


def too_large(app: Flask, size: int) -> Reply:
    """A body over 100 kB: 422 as the old server answered, kept in event_errors by size only."""
    reason = f"request entity too large: {size} bytes, the limit is {MAX_BODY_BYTES}"
    record_errors([rejection(ENDPOINT, reason, body_size=size, site_id=legacy_site_id(app))])
    return Reply(422, {"message": reason})


def record(app: Flask, body: bytes, content_type: str | None, ip: str | None = None) -> Reply:
    """Validate one record or a batch; store all of it in one transaction, or nothing.

    `ip`, the client address, only gives the records a country; it is not stored.
    """
    site_id = legacy_site_id(app)
    if not _is_json(content_type):
        return _refuse("Content-Type must be application/json", site_id, body)
    try:
        data = parse_json(body)
    except ValueError as exc:
        return _refuse(f"body is not valid JSON: {exc}", site_id, body)
    if isinstance(data, dict):
        items = [data]
    elif isinstance(data, list):
        items = data
    else:
        return _refuse("body must be a record object or an array of records", site_id, body, data)
    if not items:
        return Reply(200, CREATED)

    records: list[BenefitRecord] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            records.append(BenefitRecord.model_validate(item))
        except ValidationError as exc:
            where = f"record {index}: " if isinstance(data, list) else ""
            problems.append(where + summary(exc))
    if problems:
        reason = "; ".join(problems)
        if isinstance(data, list):
            reason = f"{len(problems)} of {len(items)} records invalid, none stored: {reason}"
        return _refuse(reason, site_id, body, data)

    now = utcnow()
    group_id = uuid.uuid4().hex
    country = country_of(app, ip)
    rows = [record_row(r, site_id, group_id, created_at=now, country=country) for r in records]
    store_events(rows, [])
    return Reply(200, CREATED)


# --- read side (the counts themselves: analytics/stats/recorder.py) -----------------------


def parse_start(value: str | None) -> dt.datetime | None:
    """`start_at` as a date or ISO date-time (zone-less is UTC) -> naive UTC; None when absent."""
    if value is None or value.strip() == "":
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ValueError(f"start_at is not a date: {value[:64]!r}") from exc
