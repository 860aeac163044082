"""The benefits recorder's own read endpoints, `GET /benefits` and `GET /statistics`.

They answer in the old system's JSON shapes; the counts come through rollups like every page.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import FromClause, func, select

from ..ingest.legacy.benefits import CURRENT_VERSION, SOURCE
from .base import counts, frame, metric, scoped


@dataclass(frozen=True)
class _Site:
    id: int


@dataclass(frozen=True)
class Since:
    """A range open at the end: everything of one site from `start` (or from its beginning)."""

    site: _Site
    start: dt.datetime | None
    end: dt.datetime | None = None
    bucket: str = "day"

    def previous(self) -> Since:
        return self


@metric("recorder_items", keys=("item_id", "name"), measures=("events",), all_time=True)
def _item_counts(filters: Since, ev: FromClause) -> pd.DataFrame:
    stmt = scoped(
        select(ev.c.item_id, ev.c.name, func.count().label("events")).where(
            ev.c.source == SOURCE
        ),
        filters,
        ev,
    ).group_by(ev.c.item_id, ev.c.name)
    return frame(stmt, ["item_id", "name", "events"])


@metric(
    "recorder_positions", keys=("item_id", "name", "place"), measures=("events",), all_time=True
)
def _position_counts(filters: Since, ev: FromClause) -> pd.DataFrame:
    """Current-version records by benefit, type and "page_total benefit_index"."""
    stmt = scoped(
        select(
            ev.c.item_id,
            ev.c.name,
            ev.c.list_size,
            ev.c.item_position,
            func.count().label("events"),
        ).where(ev.c.source == SOURCE, ev.c.schema_version == CURRENT_VERSION),
        filters,
        ev,
    ).group_by(ev.c.item_id, ev.c.name, ev.c.list_size, ev.c.item_position)
    df = frame(stmt, ["item_id", "name", "list_size", "item_position", "events"])
    places = zip(df["list_size"], df["item_position"], strict=True)
    df["place"] = [f"{_text(total)} {_text(index)}" for total, index in places]
    return df[["item_id", "name", "place", "events"]]


def _text(value: Any) -> str:
    """A count key as text; a missing one as 'None', as the old endpoint printed it."""
    return "None" if value is None or value != value else str(int(value))


def _benefit(value: Any) -> str | None:
    """A benefit id; records without one (none are accepted, imports may have) give None."""
    return value if isinstance(value, str) and value else None


def events_by_benefit(site_id: int, start_at: dt.datetime | None) -> list[dict[str, Any]]:
    """`GET /benefits`: [{"id": benefit, "events": {event_type: count}}], every version."""
    df = counts("recorder_items", Since(_Site(site_id), start_at))
    rows = [(_benefit(b), name, int(n)) for b, name, n in df.itertuples(index=False) if n]
    out: dict[str | None, dict[str, int]] = {}
    for benefit, name, n in sorted(rows, key=lambda r: (r[0] is None, r[0] or "", r[1])):
        out.setdefault(benefit, {})[name] = n
    return [{"id": benefit, "events": events} for benefit, events in out.items()]


def statistics(site_id: int) -> list[dict[str, Any]]:
    """`GET /statistics`: per benefit, counts by event_type, page_total and benefit_index.

    Only the current version: older versions counted positions differently.
    """
    df = counts("recorder_positions", Since(_Site(site_id), None))
    tree: dict[Any, dict[str, dict[str, dict[str, int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    totals: dict[Any, int] = defaultdict(int)
    # Plain lists, not itertuples: 14,000 rows at 10 M events, and pandas' per-row access
    # was a third of this loop.
    columns = (df[c].tolist() for c in ("item_id", "name", "place", "events"))
    for benefit, name, place, n in zip(*columns, strict=True):
        if not n:
            continue
        benefit = _benefit(benefit)
        total, index = place.split(" ", 1)
        tree[benefit][name][total][index] = int(n)
        totals[benefit] += int(n)
    ranked = sorted(tree, key=lambda benefit: (-totals[benefit], benefit or ""))
    return [
        {
            "benefit": benefit,
            "events": {name: dict(by_total) for name, by_total in tree[benefit].items()},
            "events_count": totals[benefit],
        }
        for benefit in ranked
    ]
