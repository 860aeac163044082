"""The view every dashboard page shows: a site, a time range and the explorer's filters.

All of it lives in the URL query string, so a view can be bookmarked and shared, and
`parse_filters` turns any query string (however wrong) into a valid `Filters`, never an error.
Ranges are half-open `[start, end)` in naive UTC, like the stored timestamps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from .extensions import db
from .models import Event, Site, utcnow
from .segments import Segment, parse_segment

PERIODS = ("today", "7d", "30d", "12m", "all", "custom")
PRESETS = {"today": "Today", "7d": "7 days", "30d": "30 days", "12m": "12 months", "all": "All"}
DEFAULT_PERIOD = "30d"
EXPLORER_FIELDS = ("source", "name", "category", "session", "path")
MAX_FILTER_LENGTH = 1024  # the longest stored column (path) a filter can match
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Filters:
    """What one dashboard view shows; `start`/`end` are naive UTC, half-open."""

    site: Site
    period: str
    start: dt.datetime
    end: dt.datetime
    source: str | None = None
    name: str | None = None
    category: str | None = None
    session: str | None = None
    path: str | None = None
    # A read-only share token carried from link to link (never set for logged-in users' links).
    share: str | None = None
    # The filters every page and CSV applies (analytics/segments.py); empty: unfiltered.
    segment: Segment = Segment()

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def bucket(self) -> str:
        """The time-series bucket that gives a readable number of points for this range."""
        days = self.length / DAY
        if days <= 2:
            return "hour"
        if days <= 92:
            return "day"
        if days <= 2 * 366:
            return "week"
        return "month"

    @property
    def last_day(self) -> dt.date:
        """The inclusive last day, as shown in the custom range inputs."""
        return (self.end - dt.timedelta(microseconds=1)).date()

    def previous(self) -> Filters:
        """The period of the same length just before this one (for "change vs previous")."""
        return dataclasses.replace(
            self, period="custom", start=self.start - self.length, end=self.start
        )

    def explorer(self) -> dict[str, str]:
        """The non-empty explorer filters."""
        return {f: v for f in EXPLORER_FIELDS if (v := getattr(self, f))}

    def query_args(self, **overrides: Any) -> dict[str, str]:
        """URL query parameters that reproduce this view; an override of None drops a key."""
        args: dict[str, Any] = {"site": self.site.public_id, "period": self.period}
        if self.period == "custom":
            args["start"] = self.start.date().isoformat()
            args["end"] = self.last_day.isoformat()
        args.update(self.explorer())
        args.update(self.segment.query_args())  # the same parameters, escaped where needed
        if self.share:
            args["share"] = self.share
        args.update(overrides)
        return {k: str(v) for k, v in args.items() if v is not None and v != ""}

    def with_filter(self, dimension: str, value: Any) -> dict[str, str]:
        """Query parameters of this view with one more filter (replacing one on `dimension`)."""
        return self._with(self.segment.adding(dimension, str(value)), dimension)

    def without_filter(self, dimension: str) -> dict[str, str]:
        """Query parameters of this view without its filter on `dimension`."""
        return self._with(self.segment.without(dimension), dimension)

    def _with(self, segment: Segment, dimension: str) -> dict[str, str]:
        # The explorer's own fields share some names with the segment's (path, name, source,
        # category): a changed filter replaces both.
        plain = {dimension: None} if dimension in EXPLORER_FIELDS else {}
        return dataclasses.replace(self, segment=segment, **plain).query_args()

    def hidden_args(self) -> dict[str, str]:
        """What the filter bar's form carries along unchanged: explorer fields and filters."""
        return self.explorer() | self.segment.query_args()

    def describe(self) -> str:
        """A short human label of the range, e.g. '2024-05-01 – 2024-05-30'."""
        first, last = self.start.date(), self.last_day
        return first.isoformat() if first == last else f"{first.isoformat()} – {last.isoformat()}"


def parse_day(value: str | None) -> dt.date | None:
    """A YYYY-MM-DD date within sane years (so that date arithmetic can never overflow)."""
    try:
        day = dt.date.fromisoformat((value or "").strip()[:10])
    except ValueError:
        return None
    return day if 1970 <= day.year <= 2200 else None


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_FILTER_LENGTH] or None


def first_event_time(site: Site) -> dt.datetime | None:
    """The site's earliest event (uses the primary key index, which starts with site_id)."""
    return db.session.execute(
        select(func.min(Event.occurred_at)).where(Event.site_id == site.id)
    ).scalar_one()


def _midnight(value: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(value.date(), dt.time())


def preset_range(
    period: str,
    site: Site,
    now: dt.datetime,
    earliest: Callable[[Site], dt.datetime | None] = first_event_time,
) -> tuple[dt.datetime, dt.datetime]:
    """Whole UTC days ending with today; "all" starts on the day of the site's first event."""
    end = _midnight(now) + DAY
    if period == "today":
        return end - DAY, end
    if period == "7d":
        return end - 7 * DAY, end
    if period == "12m":
        return end - 365 * DAY, end
    if period == "all":
        first = earliest(site) or site.created_at or now
        return min(_midnight(first), end - DAY), end
    return end - 30 * DAY, end


def parse_filters(
    args: Mapping[str, str],
    sites: list[Site],
    now: dt.datetime | None = None,
    earliest: Callable[[Site], dt.datetime | None] = first_event_time,
) -> Filters:
    """Read a query string into Filters; anything missing or malformed falls back to a default.

    `period` defaults to 30d. `start`/`end` (YYYY-MM-DD, `end` inclusive) make a custom range
    whenever they are given and differ from the preset's own range (the filter bar sends the
    preset's dates along; editing them switches to a custom range). An unknown `period` with
    dates is a custom range too; an invalid one without dates falls back to 30d.
    `sites` must not be empty: the first one is the default site.
    """
    if not sites:
        raise LookupError("no site to show")
    now = now or utcnow()
    wanted = (args.get("site") or "").strip()
    site = next((s for s in sites if s.public_id == wanted), sites[0])

    period = (args.get("period") or "").strip()
    if period not in PERIODS:
        period = DEFAULT_PERIOD if period else "custom"
    start_day, end_day = parse_day(args.get("start")), parse_day(args.get("end"))
    if not (start_day or end_day):
        period = DEFAULT_PERIOD if period == "custom" else period
        start, end = preset_range(period, site, now, earliest)
    else:
        start = (
            dt.datetime.combine(start_day, dt.time())
            if start_day
            else preset_range("all", site, now, earliest)[0]
        )
        end = dt.datetime.combine(end_day, dt.time()) + DAY if end_day else _midnight(now) + DAY
        if end <= start:  # reversed dates: take them the right way round
            start, end = end - DAY, start + DAY
        if period != "custom" and (start, end) != preset_range(period, site, now, earliest):
            period = "custom"  # the dates were edited in the filter bar: they win

    explorer = {f: _text(args.get(f)) for f in EXPLORER_FIELDS}
    return Filters(
        site,
        period,
        start,
        end,
        share=_text(args.get("share")),
        segment=parse_segment(args),
        **explorer,
    )
