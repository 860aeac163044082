"""Raw rows for the events explorer, the rejected-payloads page and the raw CSV exports.

Pages use keyset pagination on (time, id) descending: each page is an index range scan that starts
where the previous one ended, so page 1000 costs what page 1 costs (OFFSET would read and drop
every earlier row). The same statements, without a limit, feed the streamed CSV exports, so a CSV
holds exactly what the pages show.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select, tuple_

from .extensions import db
from .filters import Filters
from .models import Event, EventError

PAGE_SIZE = 50

EVENT_COLUMNS = (
    "occurred_at",
    "id",
    "received_at",
    "source",
    "name",
    "category",
    "session_id",
    "visitor_id",
    "path",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "browser",
    "os",
    "device",
    "country",
    "item_id",
    "item_position",
    "list_size",
    "schema_version",
    "props",
)
ERROR_COLUMNS = (
    "received_at",
    "id",
    "endpoint",
    "site_id",
    "reason",
    "body_size",
    "payload",
    "raw_body",
)
# Explorer filter -> events column; each is an exact match.
EVENT_FILTERS = {
    "source": Event.source,
    "name": Event.name,
    "category": Event.category,
    "session": Event.session_id,
    "path": Event.path,
}


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None  # the `before` value of the next (older) page, None on the last page


def events_select(filters: Filters, columns: tuple[str, ...] = EVENT_COLUMNS) -> Select:
    """Events of the site in the period, with the explorer filters, newest first."""
    stmt = select(*(Event.__table__.c[name] for name in columns)).where(
        Event.site_id == filters.site.id,
        Event.occurred_at >= filters.start,
        Event.occurred_at < filters.end,
    )
    for field, column in EVENT_FILTERS.items():
        value = getattr(filters, field)
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt.order_by(Event.occurred_at.desc(), Event.id.desc())


def errors_select(
    filters: Filters,
    endpoint: str | None = None,
    columns: tuple[str, ...] = ERROR_COLUMNS,
) -> Select:
    """Rejected payloads received in the period, for the site or for no known site, newest first.

    Rejections whose site could not be identified (an unknown id, a body that did not parse) have
    no site; they are shown with every site, since they may be that site's lost events.
    """
    stmt = select(*(EventError.__table__.c[name] for name in columns)).where(
        EventError.received_at >= filters.start,
        EventError.received_at < filters.end,
        or_(EventError.site_id == filters.site.id, EventError.site_id.is_(None)),
    )
    if endpoint:
        stmt = stmt.where(EventError.endpoint == endpoint)
    return stmt.order_by(EventError.received_at.desc(), EventError.id.desc())


def error_endpoints() -> list[str]:
    """The endpoints that have rejected something, for the filter's choices."""
    return list(
        db.session.execute(
            select(EventError.endpoint).distinct().order_by(EventError.endpoint)
        ).scalars()
    )


def encode_cursor(when: dt.datetime, row_id: Any) -> str:
    return f"{when.isoformat()}~{row_id}"


def decode_cursor(value: str | None, id_type: type) -> tuple[dt.datetime, Any] | None:
    """The (time, id) a page starts after; None for a missing or malformed cursor."""
    if not value or "~" not in value:
        return None
    when, _, row_id = value.partition("~")
    try:
        return dt.datetime.fromisoformat(when).replace(tzinfo=None), id_type(row_id)
    except ValueError:
        return None


def _page(stmt: Select, time_col, id_col, cursor: tuple[dt.datetime, Any] | None) -> Page:
    if cursor is not None:
        when, row_id = cursor
        # Spelled out (rather than a row-value comparison) so both databases use the index.
        stmt = stmt.where(
            or_(time_col < when, and_(time_col == when, id_col < row_id))
            if db.engine.dialect.name == "sqlite"
            else tuple_(time_col, id_col) < tuple_(when, row_id)
        )
    rows = list(db.session.execute(stmt.limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    last = rows[-1] if rows else None
    next_cursor = encode_cursor(last[0], last[1]) if more and last is not None else None
    return Page(rows, next_cursor)


def events_page(filters: Filters, before: str | None = None) -> Page:
    """One page of events, newest first, starting after the `before` cursor."""
    return _page(
        events_select(filters), Event.occurred_at, Event.id, decode_cursor(before, uuid.UUID)
    )


def errors_page(filters: Filters, endpoint: str | None = None, before: str | None = None) -> Page:
    """One page of rejected payloads, newest first, starting after the `before` cursor."""
    return _page(
        errors_select(filters, endpoint),
        EventError.received_at,
        EventError.id,
        decode_cursor(before, int),
    )
