"""What every stats function shares: the site-and-period scope, and SQL rows -> DataFrame.

This is the only place the read side chooses rows, so rollup tables can later replace the base
query without touching the metric functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Select, func

from ..extensions import db
from ..models import Event


class HasId(Protocol):
    id: int


class Scope(Protocol):
    """What the stats need from the dashboard filters (`analytics.filters.Filters` fits)."""

    site: HasId
    start: dt.datetime | None
    end: dt.datetime | None
    bucket: str

    def previous(self) -> Scope: ...


# A visit is a tracker session; events without one (API calls) fall back to their visitor.
VISIT = func.coalesce(Event.session_id, Event.visitor_id)


def scoped(stmt: Select, filters: Scope) -> Select:
    """Restrict a SELECT on `events` to the filters' site and [start, end) period."""
    stmt = stmt.where(Event.site_id == filters.site.id)
    if filters.start is not None:
        stmt = stmt.where(Event.occurred_at >= filters.start)
    if filters.end is not None:
        stmt = stmt.where(Event.occurred_at < filters.end)
    return stmt


def frame(stmt: Select, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame (column names from the labels)."""
    result = db.session.execute(stmt)
    names = list(columns) if columns is not None else list(result.keys())
    return pd.DataFrame([tuple(row) for row in result], columns=names)


def percent(part: Any, whole: Any) -> Any:
    """part / whole * 100 rounded to 0.1, NaN (or None for scalars) where whole is 0."""
    if isinstance(part, pd.Series):
        whole = pd.Series(whole, index=part.index) if not isinstance(whole, pd.Series) else whole
        return (part * 100.0 / whole.where(whole != 0)).round(1)
    return round(part * 100.0 / whole, 1) if whole else None
