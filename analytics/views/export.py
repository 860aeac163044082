"""Raw downloads: every event and every rejected payload matching the filters, streamed.

Rows come from a server-side cursor (`yield_per`) and leave as CSV chunks while later rows are
still being read, so a million rows never sit in memory. No row cap. Login only: share links
open dashboards, never raw data.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..auth import login_required
from ..explorer import ERROR_COLUMNS, EVENT_COLUMNS, errors_select, events_select
from ..export import stream_csv
from ..extensions import db
from ..filters import Filters
from .common import current_filters

bp = Blueprint("export", __name__, url_prefix="/export")

YIELD_PER = 5000


def _stream(stmt, header: tuple[str, ...], filename: str) -> Response:
    def rows():
        # Oldest first in a file; executed only once the response starts streaming.
        result = db.session.execute(stmt.execution_options(yield_per=YIELD_PER))
        yield from result
        result.close()

    return stream_csv(list(header), rows(), filename)


def _name(kind: str, filters: Filters) -> str:
    return (
        f"{kind}-{filters.site.public_id}-{filters.start:%Y-%m-%d}-{filters.last_day:%Y-%m-%d}.csv"
    )


@bp.get("/events.csv")
@login_required
def events_csv() -> Response:
    """`site`, `period` or `start`/`end`, and `source`, `name`, `category`, `session`, `path`."""
    filters = current_filters()
    stmt = events_select(filters, json_as_text=True).order_by(None).order_by("occurred_at", "id")
    return _stream(stmt, EVENT_COLUMNS, _name("events", filters))


@bp.get("/errors.csv")
@login_required
def errors_csv() -> Response:
    """`site`, `period` or `start`/`end`, and `endpoint`."""
    filters = current_filters()
    endpoint = (request.args.get("endpoint") or "").strip()[:64] or None
    stmt = (
        errors_select(filters, endpoint, json_as_text=True)
        .order_by(None)
        .order_by("received_at", "id")
    )
    return _stream(stmt, ERROR_COLUMNS, _name("errors", filters))
