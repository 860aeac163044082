"""Bring the older systems' data along: `flask --app wsgi import --from FORMAT FILE [--site ID]`.

Formats: `recorder` (a mongoexport of the recorder's `records`: a JSON array or JSON lines, in
relaxed or canonical extended JSON), `trackers` (CSV of the FastAPI demo's `trackers` table: id,
data, created_at), `collector` (CSV of Django's `collector_event`: id, session_id, category, name,
data, timestamp, created_at) and `events` (JSON lines in the `/api/events` schema, `ts` of any age).

Every line becomes an event through the contract's own validation, with its original time, or an
`event_errors` row naming the line. Rows go in by batches, one transaction each (COPY into a
temporary table, then INSERT ... ON CONFLICT DO NOTHING on PostgreSQL; executemany on SQLite).
Each row carries a dedupe key derived from the format and the line's original id (or content), so
importing a file twice stores it once.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from flask import Flask
from psycopg.types.json import Jsonb
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Connection

from .extensions import db
from .ingest.legacy import rejection, summary
from .ingest.legacy.benefits import BenefitRecord, record_row
from .ingest.legacy.collector import CollectorEvent, event_from
from .ingest.legacy.site import legacy_site_id
from .ingest.legacy.track import TrackIn, parse_track_time, track_row
from .ingest.native import event_fields
from .ingest.payload import depth, parse_clean
from .ingest.schema import EventIn
from .ingest.writer import EVENT_COLUMNS, event_row, insert_events, record_errors
from .models import Site, utcnow
from .sites import InvalidInput

FORMATS = ("recorder", "trackers", "collector", "events")
SOURCES = {
    "recorder": "benefits",
    "trackers": "track",
    "collector": "collector",
    "events": "import",
}
BATCH_ROWS = 5000
RAW_LINE_CAP = 8192

Progress = Callable[[int], None]


class Rejected(ValueError):
    """A line that cannot be imported; the message says why."""


@dataclass
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0

    def line(self) -> str:
        return (
            f"imported {self.imported} rows, skipped {self.duplicates} duplicates, "
            f"rejected {self.rejected} rows"
        )


@dataclass
class Item:
    """One record read from a file: where it starts, its text, and its parsed value or error."""

    line: int
    text: str
    data: Any = None
    error: str | None = None


# --- reading ----------------------------------------------------------------------------------


def _json_items(fh: IO[bytes], progress: Progress) -> Iterator[Item]:
    """A JSON array (mongoexport --jsonArray) or JSON lines, whichever the file is."""
    head = fh.read(4096)
    fh.seek(0)
    if head.lstrip().startswith(b"["):
        yield from _json_array(fh.read().decode("utf-8", "replace"), progress)
        return
    for number, raw in enumerate(fh, start=1):
        progress(len(raw))
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            yield Item(number, text, data=parse_clean(text))
        except ValueError as exc:
            yield Item(number, text, error=f"not valid JSON: {exc}")


def _json_array(text: str, progress: Progress) -> Iterator[Item]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            yield Item(line, text[pos : pos + 200], error=f"not valid JSON: {exc}")
            break
        progress(len(text[pos:end].encode()))
        yield Item(line, text[pos:end], data=value)
        pos = end


def _csv_items(fh: IO[bytes], progress: Progress) -> Iterator[Item]:
    """CSV with a header line; a quoted field may span lines (JSON in `data`)."""
    decode = codecs.getincrementaldecoder("utf-8-sig")("replace")

    def lines() -> Iterator[str]:
        for raw in fh:
            progress(len(raw))
            yield decode.decode(raw)

    reader = csv.DictReader(lines())
    start = 2
    for record in reader:
        text = json.dumps(record, ensure_ascii=False)
        if None in record or None in record.values():
            yield Item(start, text, error="wrong number of columns")
        else:
            yield Item(start, text, data=record)
        start = reader.line_num + 1


# --- converting -------------------------------------------------------------------------------


def _key(fmt: str, identity: str) -> str:
    return hashlib.sha256(f"import:{fmt}:{identity}".encode()).hexdigest()


def _unwrap(value: Any) -> Any:
    """Extended JSON (mongoexport) -> plain values: $oid, $date, $numberInt/Long/Double."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key in ("$numberInt", "$numberLong", "$numberDouble", "$numberDecimal", "$oid"):
                return inner
            if key == "$date":
                inner = _unwrap(inner)
                if isinstance(inner, str) and inner.lstrip("-").isdigit():
                    inner = int(inner)
                if isinstance(inner, int | float):
                    try:
                        moment = dt.datetime.fromtimestamp(inner / 1000, dt.UTC)
                    except (OverflowError, OSError, ValueError):
                        return str(inner)  # rejected with a clear reason by _time
                    return moment.replace(tzinfo=None)
                return inner
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _time(value: Any, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return parse_track_time(value)
    except ValueError as exc:
        raise Rejected(f"{what}: {exc}") from exc


def _recorder(item: Item, site_id: int, now: dt.datetime) -> dict[str, Any]:
    doc = _unwrap(item.data)
    if not isinstance(doc, dict):
        raise Rejected("not a record object")
    oid = doc.get("_id") if isinstance(doc.get("_id"), str) else None
    created = doc.get("createdAt", doc.get("created_at"))
    if created is not None:
        created_at = _time(created, "created_at")
    elif oid and len(oid) == 24:
        # An ObjectId starts with its creation time in epoch seconds.
        created_at = _time(int(oid[:8], 16), "_id")
    else:
        raise Rejected("no created_at and no ObjectId to date the record")
    try:
        record = BenefitRecord.model_validate(doc)
    except ValidationError as exc:
        raise Rejected(summary(exc)) from exc
    group = doc.get("group_id")
    return record_row(
        record,
        site_id,
        str(group) if group is not None else None,
        created_at=created_at,
        received_at=created_at,
        dedupe_key=_key("recorder", oid or item.text),
        # Records without a version predate versioning; the old /statistics left them out.
        default_version=1,
    )


def _json_field(record: dict[str, str], name: str) -> Any:
    try:
        return parse_clean(record.get(name) or "")
    except ValueError as exc:
        raise Rejected(f"{name} is not valid JSON: {exc}") from exc


def _trackers(item: Item, site_id: int, now: dt.datetime) -> dict[str, Any]:
    record: dict[str, str] = item.data
    data = _json_field(record, "data")
    if not isinstance(data, dict):
        raise Rejected("data is not a JSON object")
    created = record.get("created_at") or None
    if "timestamp" not in data and created:
        data["timestamp"] = created
    try:
        payload = TrackIn.model_validate(data)
    except ValidationError as exc:
        raise Rejected(summary(exc)) from exc
    server = payload.server_context
    agent = server.get("user_agent") or server.get("user-agent") or server.get("User-Agent")
    return track_row(
        payload,
        site_id,
        user_agent=agent if isinstance(agent, str) else None,
        received_at=_time(created, "created_at") if created else now,
        source="track",
        dedupe_key=_key("trackers", record.get("id") or item.text),
    )


def _collector(item: Item, site_id: int, now: dt.datetime) -> dict[str, Any]:
    record: dict[str, str] = item.data
    fields = {k: record.get(k) for k in ("session_id", "category", "name", "timestamp")}
    fields["data"] = _json_field(record, "data")
    try:
        event = CollectorEvent.model_validate(fields)
    except ValidationError as exc:
        raise Rejected(summary(exc)) from exc
    created = record.get("created_at") or None
    # Same dedupe key as the live endpoint: (session_id, timestamp) stays unique across both.
    return event_from(event, site_id, received_at=_time(created, "created_at") if created else now)


def _events(item: Item, site_id: int, now: dt.datetime, public_id: str) -> dict[str, Any]:
    data = item.data
    if not isinstance(data, dict):
        raise Rejected("not an event object")
    if data.setdefault("site", public_id) != public_id:
        raise Rejected(f"site {str(data['site'])[:40]!r} is not the --site {public_id!r}")
    if data.get("ts") is None:
        raise Rejected("ts: required for an import (the event's original time)")
    try:
        event = EventIn.model_validate(data, context={})  # no "now": any age is accepted
    except ValidationError as exc:
        raise Rejected(summary(exc)) from exc
    fields = event_fields(event)
    fields["dedupe_key"] = event.eid or _key("events", item.text)[:64]
    return event_row(
        site_id=site_id, source="import", occurred_at=event.ts, received_at=event.ts, **fields
    )


# --- writing ----------------------------------------------------------------------------------


def _copy_insert(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """PostgreSQL: COPY the batch into a temporary table, then insert what is not there yet."""
    columns = ", ".join(EVENT_COLUMNS)
    props_at = EVENT_COLUMNS.index("props")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS import_events "
            "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY import_events ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = [row[name] for name in EVENT_COLUMNS]
                if values[props_at] is not None:
                    values[props_at] = Jsonb(values[props_at])
                copy.write_row(values)
        cur.execute(
            f"INSERT INTO events ({columns}) SELECT {columns} FROM import_events "
            "ON CONFLICT DO NOTHING"
        )
        return cur.rowcount


def _flush(rows: list[dict[str, Any]], errors: list[dict[str, Any]], result: ImportSummary) -> None:
    if not rows and not errors:
        return
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql" and rows:
            stored = _copy_insert(conn, rows)
        else:
            stored = insert_events(conn, rows)
        record_errors(errors, conn)
    result.imported += stored
    result.duplicates += len(rows) - stored
    result.rejected += len(errors)
    rows.clear()
    errors.clear()


def import_file(
    path: str,
    fmt: str,
    site_id: int,
    *,
    site_public_id: str = "",
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportSummary:
    """Import one file of the given format into a site; return what happened."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    advance = progress or (lambda n: None)
    endpoint = f"import:{fmt}"
    now = utcnow()
    convert: Callable[[Item, int, dt.datetime], dict[str, Any]] = {
        "recorder": _recorder,
        "trackers": _trackers,
        "collector": _collector,
        "events": lambda item, site, at: _events(item, site, at, site_public_id),
    }[fmt]
    result = ImportSummary()
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        items = _csv_items(fh, advance) if fmt in ("trackers", "collector") else None
        for item in items or _json_items(fh, advance):
            reason = item.error
            if reason is None:
                try:
                    rows.append(convert(item, site_id, now))
                except (Rejected, ValueError, TypeError) as exc:
                    # A malformed line must not stop an import of millions.
                    reason = str(exc) or type(exc).__name__
            if reason is not None:
                data = item.data if item.data is not None and depth(item.data) < 32 else None
                errors.append(
                    rejection(
                        endpoint,
                        f"line {item.line}: {reason}",
                        body=item.text[:RAW_LINE_CAP],
                        data=data,
                        site_id=site_id,
                    )
                )
            if len(rows) + len(errors) >= batch_rows:
                _flush(rows, errors, result)
    _flush(rows, errors, result)
    return result


def site_for_import(app: Flask, fmt: str, public_id: str | None) -> tuple[int, str]:
    """(id, public id) of the target site: --site, else the legacy site (not for `events`)."""
    if public_id:
        found = db.session.execute(select(Site.id).where(Site.public_id == public_id)).first()
        if found is None:
            raise InvalidInput(f"no site with public id {public_id!r}")
        return found.id, public_id
    if fmt == "events":
        raise InvalidInput("--from events needs --site ID (the site the events belong to)")
    return legacy_site_id(app), ""
