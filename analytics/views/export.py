"""Raw downloads: every event and every rejected payload matching the filters, streamed.

The database writes the CSV (`csv_sql`) and its chunks leave while later rows are still being
read, so a million rows never sit in memory. No row cap. Login only: share links open
dashboards, never raw data.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import Select

from ..auth import login_required
from ..csv_sql import csv_stream
from ..explorer import errors_select, events_select
from ..export import stream_chunks
from ..filters import Filters
from ..models import Event, EventError
from ..replica import read_engine
from .common import current_filters

bp = Blueprint("export", __name__, url_prefix="/export")


def _stream(stmt: Select, filename: str) -> Response:
    # Executed only once the response starts streaming.
    return stream_chunks(csv_stream(read_engine(), stmt), filename)


def _name(kind: str, filters: Filters) -> str:
    return (
        f"{kind}-{filters.site.public_id}-{filters.start:%Y-%m-%d}-{filters.last_day:%Y-%m-%d}.csv"
    )


@bp.get("/events.csv")
@login_required
def events_csv() -> Response:
    """`site`, `period` or `start`/`end`, and `source`, `name`, `category`, `session`, `path`."""
    filters = current_filters()
    # Oldest first in a file.
    stmt = events_select(filters).order_by(None).order_by(Event.occurred_at, Event.id)
    return _stream(stmt, _name("events", filters))


@bp.get("/errors.csv")
@login_required
def errors_csv() -> Response:
    """`site`, `period` or `start`/`end`, and `endpoint`."""
    filters = current_filters()
    endpoint = (request.args.get("endpoint") or "").strip()[:64] or None
    stmt = (
        errors_select(filters, endpoint)
        .order_by(None)
        .order_by(EventError.received_at, EventError.id)
    )
    return _stream(stmt, _name("errors", filters))
