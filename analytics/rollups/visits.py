"""The visits of split days, so any visit-level or event-level filter reads stored days.

Split counts (slices.py) answer one value of one dimension. Several values (`country=FR,BE`), a
negation (`referrer=!www.google.com`) or several dimensions at once cannot come from them:
distinct visitors do not add across values, nor subtract for a negation. The visits themselves
do. A visit-level filter keeps or drops whole visits, each judged by its own values (its entry
page view, its first event); an event-level filter keeps events by their own values. For the
day-local visits of a split day both are tests on stored values, and each Overview metric is
counted over what they keep: distinct visitors over their ids, which are day-local too, so they
never repeat across days.

Stored per site and day in `rollup_visit_days`, with the day's split counts and removed with
them, under the same `sliced` marker: a read takes exactly the days `read._split_plan` stores,
and counts the rest of the range (span events, raw times) with the metric's SQL under the
filter, as for split counts. Three blobs: the visits (a row per visit and distinct visitor and
user agent and country of its events), their page views per path, and the day's events grouped
by visit and every column an event-level filter or a card reads (the *parts*), with their first
and last time and the place of their first page view in the visit.

Why columnar blobs, not a row per visit: a 30-day Overview at 10 M events keeps about 100,000
visits, and counting distinct visitors per card in SQL took 100-200 ms per card over rows like
those (2.8 s a page). Here a page reads 30 rows per period, decodes each day's columns (numpy
views of one decompressed buffer), and counts every card in memory from one filtered frame.

Each metric is the Overview metric's SQL (stats/overview.py) restated over visits or parts; the
property tests hold them equal (tests/test_slices.py).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd
from flask import current_app, has_app_context, has_request_context, request
from sqlalchemy import (
    ARRAY,
    FromClause,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..extensions import db
from ..models import RollupVisitDay
from ..segments import DIRECT, Segment
from ..stats.base import Metric, Scope, frame, visit
from ..stats.dialect import dialect, seconds_between, url_host, without_nested_loops
from ..stats.overview import UNKNOWN, UTM_KEYS
from ..stats.segment import ENTRY, FIRST_EVENT, prop_value
from ..vocabulary import PAGEVIEW
from .read import Plan, stored_days
from .store import midnight

TABLE: FromClause = RollupVisitDay.__table__
WHO = ("browser", "os", "device", "country")  # a visit's own values, per row
JUDGED = {**{d: d for d in ENTRY}, **{d: f"first_{d}" for d in FIRST_EVENT}}  # filter -> column
TEXT = (*WHO, *JUDGED.values())
# Event-level filters the parts answer (filter -> column). `item` and `prop.KEY` only from the
# *details*, the same groups split by item and properties too: a list view's impressions are an
# event per item, and that made them 1.8x as many (31,500 a day of 38,000 events at 10 M demo
# events, against 17,600), which every other event-level filter would decode for nothing.
EVENT_LEVEL = {"path": "path", "name": "name", "source": "source", "category": "category",
               "item": "item"}  # fmt: skip
DETAILED = ("item",)  # with every `prop.KEY`: the filters only the details answer
PART_TEXT = ("path", "name", "source", "category", *WHO, "referrer", *UTM_KEYS)
PEOPLE = ("visitor_id", "entry_visitor")  # visitor ids: a day's own numbers once stored
NUMBERS = ("visits", "events", "pageviews", "bounces", "seconds")
SHIFT = 2**32  # a key = day number * SHIFT + a visitor's (or visit's) number within the day


def answers(segment: Segment | None) -> bool:
    """Whether stored visits answer this segment: visit-level and event-level conditions, any
    but `goal`."""
    known = (*JUDGED, *EVENT_LEVEL)
    return bool(segment) and all(c.dimension in known or c.is_prop for c in segment.conditions)


def _detailed(segment: Segment) -> bool:
    return any(c.dimension in DETAILED or c.is_prop for c in segment.conditions)


# --- writing ----------------------------------------------------------------------------------


def _visit_rows(local: FromClause, attributes: FromClause):
    """A row per visit and distinct (visitor, browser, os, device, country) of its events; the
    first row of a visit carries its visit, bounce and length, every row its judged values."""
    key = visit(local)
    pageviews = func.sum(case((local.c.name == PAGEVIEW, 1), else_=0))
    who = [local.c.visitor_id, *(local.c[c] for c in WHO)]
    parts = (
        select(
            key.label("visit"), *who, func.count().label("events"),
            pageviews.label("pageviews"),
            func.row_number().over(partition_by=key, order_by=who).label("part"),
        )
        .where(key.isnot(None))
        .group_by(key, *who)
        .subquery("visit_parts")
    )  # fmt: skip
    span = seconds_between(func.min(local.c.occurred_at), func.max(local.c.occurred_at))
    whole = (
        select(key.label("visit"), func.count().label("events"),
               pageviews.label("pageviews"), span.label("seconds"))
        .where(key.isnot(None))
        .group_by(key)
        .subquery("visit_whole")
    )  # fmt: skip
    first = parts.c.part == 1
    bounced = and_(first, whole.c.events == 1, whole.c.pageviews == 1)
    return select(
        parts.c.visit, parts.c.visitor_id, *(parts.c[c] for c in WHO),
        *(attributes.c[d].label(column) for d, column in JUDGED.items()),
        attributes.c.entry_visitor,
        case((first, 1), else_=0).label("visits"), parts.c.events, parts.c.pageviews,
        case((bounced, 1), else_=0).label("bounces"),
        case((first, whole.c.seconds), else_=0.0).label("seconds"),
    ).select_from(
        parts.join(whole, whole.c.visit == parts.c.visit).join(
            attributes, attributes.c.visit == parts.c.visit
        )
    )  # fmt: skip


def _page_rows(local: FromClause):
    """Page views per visit, visitor and path."""
    key = visit(local)
    viewed = [local.c.visitor_id, local.c.path]
    return (
        select(key.label("visit"), *viewed, func.count().label("pageviews"))
        .where(key.isnot(None), local.c.name == PAGEVIEW, local.c.path.isnot(None))
        .group_by(key, *viewed)
    )


def _part_rows(local: FromClause, start: dt.datetime, detailed: bool = False):
    """The day's events grouped by visit, visitor and every column an event-level filter or an
    Overview card reads (and the item and properties, as text, when `detailed`: `local` has
    them), with their first and last time (seconds since midnight) and, for page views, the
    place of the first in its visit (by time, then id) and where it came from: the entry of a
    visit under an event-level filter is its first kept page view."""
    key = visit(local)
    nth = func.row_number().over(partition_by=key, order_by=(local.c.occurred_at, local.c.id))
    ranked = select(local, key.label("visit"), nth.label("nth")).subquery("ranked_events")
    is_pv = ranked.c.name == PAGEVIEW
    keys = [ranked.c.visit, ranked.c.visitor_id,
            *(ranked.c[c] for c in ("path", "name", "source", "category", *WHO))]  # fmt: skip
    group = list(keys)
    if detailed:
        props = cast(ranked.c.props, Text)
        keys += [ranked.c.item_id.label("item"), props.label("props")]
        group += [ranked.c.item_id, props]
    parts = (
        select(
            *keys, func.count().label("events"),
            func.sum(case((is_pv, 1), else_=0)).label("pageviews"),
            seconds_between(literal(start), func.min(ranked.c.occurred_at)).label("first_at"),
            seconds_between(literal(start), func.max(ranked.c.occurred_at)).label("last_at"),
            func.min(case((is_pv, ranked.c.nth))).label("first_view"),
        )
        .group_by(*group)
        .subquery("event_parts")
    )  # fmt: skip
    entry = ranked.alias("entry_view")
    landed = and_(entry.c.visit == parts.c.visit, entry.c.nth == parts.c.first_view)
    referrer = case(
        (parts.c.first_view.is_(None), None),
        else_=func.coalesce(url_host(entry.c.referrer), DIRECT),
    )
    return select(
        parts, referrer.label("referrer"), *(entry.c[k].label(k) for k in UTM_KEYS)
    ).select_from(parts.outerjoin(entry, landed))


class _Columns:
    """A day's columns on their way to or from one blob: a JSON header (names, dtypes,
    lengths, compressed sizes, and each text column's distinct values), then each numpy array
    compressed apart. A read decompresses only the columns it asks for (a page's headline
    numbers for the previous period need 6 of 20), each a view of its own buffer; nothing is
    unpickled."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.texts: dict[str, list[str]] = {}
        self._stored: dict[str, tuple[str, int, int, int]] = {}  # name -> dtype, n, at, size
        self._blob = b""

    def text(self, name: str, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)  # None: -1
        self.arrays[name] = codes.astype("<i2" if len(uniques) < 2**15 else "<i4")
        self.texts[name] = [str(u) for u in uniques]

    def numbered(self, name: str, values: pd.Series, numbers: pd.Index) -> None:
        self.arrays[name] = numbers.get_indexer(values).astype("<i4")  # -1: none

    def number(self, name: str, values: pd.Series, dtype: str = "<i4") -> None:
        self.arrays[name] = values.to_numpy(dtype=dtype)

    def blob(self) -> bytes:
        packed = {n: zlib.compress(np.ascontiguousarray(a).tobytes(), 6)
                  for n, a in self.arrays.items()}  # fmt: skip
        header = {"arrays": [[n, a.dtype.str, len(a), len(packed[n])]
                             for n, a in self.arrays.items()],
                  "texts": self.texts}  # fmt: skip
        head = json.dumps(header).encode()
        return struct.pack("<I", len(head)) + head + b"".join(packed.values())

    @classmethod
    def read(cls, blob: bytes) -> _Columns:
        (size,) = struct.unpack_from("<I", blob)
        header = json.loads(blob[4 : 4 + size])
        found, at = cls(), 4 + size
        for name, dtype, length, packed in header["arrays"]:
            found._stored[name] = (dtype, length, at, packed)
            at += packed
        found.texts, found._blob = header["texts"], blob
        return found

    @property
    def nbytes(self) -> int:
        """Its blob and every column decoded: what keeping it costs at most."""
        decoded = sum(np.dtype(d).itemsize * n for d, n, _, _ in self._stored.values())
        return len(self._blob) + decoded

    @property
    def rows(self) -> int:
        return next(iter(self._stored.values()), ("", 0))[1]

    def array(self, name: str) -> np.ndarray | None:
        """One stored column, decompressed on first use (None: the day has no such column)."""
        if name not in self.arrays:
            if name not in self._stored:
                return None
            dtype, length, at, packed = self._stored[name]
            raw = zlib.decompress(memoryview(self._blob)[at : at + packed])
            self.arrays[name] = np.frombuffer(raw, dtype=dtype, count=length)
        return self.arrays[name]


def _encode_parts(parts: pd.DataFrame, visits: pd.Index, people: pd.Index) -> bytes:
    grouped = _Columns()
    grouped.numbered("visit", parts["visit"], visits)
    grouped.numbered("visitor_id", parts["visitor_id"], people)
    for name in (*PART_TEXT, *(["item", "props"] if "item" in parts else [])):
        grouped.text(name, parts[name])
    for name in ("events", "pageviews"):
        grouped.number(name, parts[name])
    for name in ("first_at", "last_at"):
        grouped.number(name, parts[name], "<f8")
    grouped.number("first_view", parts["first_view"].fillna(0))  # 0: no page view
    return grouped.blob()


def encode(
    rows: pd.DataFrame, pages: pd.DataFrame, parts: pd.DataFrame, details: pd.DataFrame
) -> tuple[bytes, bytes, bytes, bytes]:
    """A day's visit rows, page rows, event parts and their details (by item and properties
    too) as four blobs: text as codes and its distinct values, visits and visitors as the day's
    own numbers (the ids are not kept)."""
    visits = pd.Index(pd.unique(rows["visit"]))
    people = pd.Index(
        pd.unique(
            pd.concat([rows[c] for c in PEOPLE] + [pages["visitor_id"], parts["visitor_id"]])
            .dropna()
        )
    )
    out = _Columns()
    out.numbered("visit", rows["visit"], visits)
    for name in PEOPLE:
        out.numbered(name, rows[name], people)
    for name in TEXT:
        out.text(name, rows[name])
    for name in NUMBERS:
        out.number(name, rows[name], "<f8" if name == "seconds" else "<i4")
    viewed = _Columns()
    viewed.numbered("visit", pages["visit"], visits)
    viewed.numbered("visitor_id", pages["visitor_id"], people)
    viewed.text("path", pages["path"])
    viewed.number("pageviews", pages["pageviews"])
    return (
        out.blob(), viewed.blob(), _encode_parts(parts, visits, people),
        _encode_parts(details, visits, people),
    )  # fmt: skip


def write(site_id: int, day: dt.date, local: FromClause, attributes: FromClause) -> None:
    """Store the visits of a day's day-local events (`local`), judged by `attributes` (one row
    per visit: slices.py's temporary table of each visit's filter values)."""
    # Joins of temporary tables without statistics: PostgreSQL would guess a few rows and
    # compare every pair (slices.py measured it).
    with without_nested_loops():
        rows = frame(_visit_rows(local, attributes))
        parts = frame(_part_rows(local, midnight(day)))
        details = frame(_part_rows(local, midnight(day), detailed=True))
    pages = frame(_page_rows(local))
    blobs = dict(zip(("visits", "pages", "parts", "details"),
                     encode(rows, pages, parts, details), strict=True))  # fmt: skip
    db.session.execute(insert(TABLE).values(site_id=site_id, day=day, **blobs))


def remove(site_id: int, day: dt.date) -> None:
    """Remove the day's visits (with its split counts, whenever those go)."""
    db.session.execute(delete(TABLE).where(TABLE.c.site_id == site_id, TABLE.c.day == day))


# --- reading ----------------------------------------------------------------------------------


TEXTS = {*TEXT, *PART_TEXT, "item", "props"}  # the text columns of every blob (pages: `path`)


def _as_date(day) -> dt.date:
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])


class _Days:
    """One blob column of many days, decoded a column at a time and gathered across the days:
    visit and visitor numbers become keys unique across days (NaN where there was none); each
    text column's codes are renumbered into one list of values for all days, so the frame
    holds it as a categorical (codes and a few values, not 100,000 strings to build and
    compare); `day` is each row's day."""

    def __init__(self, days: list[tuple[dt.date, _Columns]]) -> None:
        self.days = days
        self.columns: dict[str, np.ndarray | pd.Categorical] = {}

    def __len__(self) -> int:
        return sum(stored.rows for _, stored in self.days)

    def column(self, name: str) -> np.ndarray | pd.Categorical:
        if name not in self.columns:
            self.columns[name] = self._gathered(name)
        return self.columns[name]

    def _gathered(self, name: str) -> np.ndarray | pd.Categorical:
        if name == "day":
            days = [np.full(c.rows, np.datetime64(day, "ns")) for day, c in self.days]
            return np.concatenate(days) if days else np.array([], dtype="datetime64[ns]")
        arrays, values = [], {}
        for day, stored in self.days:
            codes = stored.array(name)
            if name in TEXTS:
                renumber = [values.setdefault(t, len(values)) for t in stored.texts[name]]
                codes = np.array([*renumber, -1], dtype=np.int32)[codes]  # -1 stays -1
            elif name in ("visit", *PEOPLE):
                number = float((day - dt.date(1970, 1, 1)).days)
                keys = codes.astype(np.float64) + number * SHIFT  # exact below 2**53
                keys[codes < 0] = np.nan
                codes = keys
            arrays.append(codes)
        joined = np.concatenate(arrays) if arrays else np.array([], dtype=np.int32)
        if name in TEXTS:
            categories = pd.Index(list(values), dtype=object)
            return pd.Categorical.from_codes(joined, categories=categories)
        return joined

    def frame(self, columns: tuple[str, ...], keep: np.ndarray | None = None) -> pd.DataFrame:
        """The columns as a frame, only the rows `keep` marks when given."""
        found = {name: self.column(name) for name in columns}
        if keep is not None:
            found = {name: values[keep] for name, values in found.items()}
        return pd.DataFrame(found)


def _days(p: Plan, kind: str) -> _Days:
    """One blob column (`visits`, `pages`, `parts` or `details`) of the plan's stored days,
    read once per plan and request: its columns are decoded as the readers ask for them."""
    cache = request.__dict__.setdefault("rollup_visit_days", {}) if has_request_context() else {}
    if (p, kind) not in cache:
        where = and_(TABLE.c.site_id == p.site_id, stored_days(TABLE.c.day, p))
        if dialect() == "postgresql" and _decoded_days.limit():
            days = _decoded_days.read(p.site_id, kind, where)
        else:
            stmt = select(TABLE.c.day, TABLE.c[kind]).where(where).order_by(TABLE.c.day)
            days = [(_as_date(d), _Columns.read(blob)) for d, blob in db.session.execute(stmt)]
        cache[p, kind] = _Days(days)
    return cache[p, kind]


class _DecodedDays:
    """Stored days kept decoded between requests, up to ROLLUP_CACHE_MB per process, the
    least recently read dropped first.

    Why: every filtered view of a month reads the same 30 days (60 with the previous period),
    and fetching and decompressing them was about 200 ms of each such Overview at 25,000 events
    a day. Exact: each day is kept with its row's version (PostgreSQL's `xmin`, new with every
    row written), and a read first asks the versions of the days it needs (a small query, no
    blob) and fetches only the days whose version it does not hold. A day recounted or removed
    since has a new version or none, and is fetched again or not read.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, dt.date, str], tuple[str, _Columns]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def limit() -> int:
        megabytes = current_app.config.get("ROLLUP_CACHE_MB", 0) if has_app_context() else 0
        return int(float(megabytes) * 2**20)

    def read(self, site_id: int, kind: str, where) -> list[tuple[dt.date, _Columns]]:
        version = literal_column("xmin::text")
        wanted = [
            (_as_date(day), v)
            for day, v in db.session.execute(
                select(TABLE.c.day, version).where(where).order_by(TABLE.c.day)
            )
        ]
        found: dict[dt.date, _Columns] = {}
        with self._lock:
            for day, v in wanted:
                held = self._kept.get((site_id, day, kind))
                if held is not None and held[0] == v:
                    self._kept.move_to_end((site_id, day, kind))
                    found[day] = held[1]
        missing = [day for day, _ in wanted if day not in found]
        if missing:
            stmt = (
                select(TABLE.c.day, version, TABLE.c[kind])
                .where(TABLE.c.site_id == site_id, TABLE.c.day.in_(missing))
                .order_by(TABLE.c.day)
            )
            for day, v, blob in db.session.execute(stmt):
                columns = found[_as_date(day)] = _Columns.read(blob)
                self._keep((site_id, _as_date(day), kind), v, columns)
        return [(day, found[day]) for day, _ in wanted if day in found]

    def _keep(self, key: tuple[int, dt.date, str], version: str, columns: _Columns) -> None:
        limit = self.limit()
        if columns.nbytes > limit:
            return
        with self._lock:
            if (old := self._kept.pop(key, None)) is not None:
                self._bytes -= old[1].nbytes
            self._kept[key] = (version, columns)
            self._bytes += columns.nbytes
            while self._bytes > limit:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._bytes -= dropped.nbytes


_decoded_days = _DecodedDays()


VISIT_COLUMNS = ("visit", *PEOPLE, *TEXT, *NUMBERS, "day")
PAGE_COLUMNS = ("visit", "visitor_id", "path", "pageviews")


def _decoded(p: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The visit rows and page rows of the plan's stored days."""
    return _days(p, "visits").frame(VISIT_COLUMNS), _days(p, "pages").frame(PAGE_COLUMNS)


def _kept(filters: Scope, p: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The visit rows the segment keeps, and the page rows of those visits (once per plan,
    segment and request: a page counts a dozen metrics over them)."""
    cache = request.__dict__.setdefault("rollup_kept", {}) if has_request_context() else {}
    key = (p, filters.segment)
    if key not in cache:
        cache[key] = _keep(filters.segment, *_decoded(p))
    return cache[key]


def _matched(values: np.ndarray | pd.Categorical, condition) -> np.ndarray:
    """Which rows the condition keeps by their value (negated: no value passes too)."""
    found = np.asarray(pd.Series(values).isin(list(condition.values)))
    return ~found if condition.negated else found


def _keep(
    segment: Segment, rows: pd.DataFrame, pages: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of the visits every condition keeps, judged by the visit's stored values."""
    keep = np.ones(len(rows), dtype=bool)
    for condition in segment.conditions:
        keep &= _matched(rows[JUDGED[condition.dimension]], condition)
    rows = rows[keep]
    return rows, pages[pages["visit"].isin(rows["visit"])]


def _registrar(registry: dict[str, tuple[Callable, tuple[str, ...]]]) -> Callable:
    """A decorator factory: `@named("pages", "path", ...)` files the function in `registry`
    under the name, with the columns it reads (of event parts, only those are decoded)."""

    def named(name: str, *columns: str) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            registry[name] = (fn, columns)
            return fn

        return register

    return named


Reader = Callable[[pd.DataFrame, pd.DataFrame, Scope], pd.DataFrame]  # (visits, pages, scope)
READERS: dict[str, tuple[Reader, tuple[str, ...]]] = {}
reader = _registrar(READERS)


def stored(metric: Metric, filters: Scope, p: Plan) -> pd.DataFrame:
    """The metric over what the segment keeps of the plan's stored days (the split ones): the
    kept visits when every filter is visit-level, else the kept event parts."""
    if p.first_day is None:
        return pd.DataFrame(columns=[*metric.keys, *metric.measures])
    if all(c.dimension in JUDGED for c in filters.segment.conditions):
        rows, pages = _kept(filters, p)
        found = READERS[metric.name][0](rows, pages, filters)
    else:
        read, columns = PART_READERS[metric.name]
        found = read(_kept_parts(filters, p, columns), filters)
    return found[[*metric.keys, *metric.measures]]


def _grouped(
    rows: pd.DataFrame, keys: list[str], keep: np.ndarray | None = None, **measures
) -> pd.DataFrame:
    """`rows` (those `keep` marks, when given) grouped by the columns `keys`, with the named
    aggregations (`sum`, `size` or `nunique`); keys as values, rows without a key dropped."""
    if len(keys) == 1 and not rows.empty:
        return _grouped_by_codes(rows, keys[0], measures, keep)
    if keep is not None:
        rows = rows[keep]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, *measures])
    found = rows.groupby(keys, sort=False, observed=True).agg(**measures).reset_index()
    for key in keys:
        if isinstance(found[key].dtype, pd.CategoricalDtype):
            found[key] = found[key].astype(object)
    return found


def _grouped_by_codes(
    rows: pd.DataFrame, key: str, measures: dict, keep: np.ndarray | None
) -> pd.DataFrame:
    """`_grouped` by one key, counted with numpy over the key's codes: a card reads a month of
    event groups (730,000 rows for `item=!rsa` at 25,000 events a day), and a pandas groupby
    took 56 ms for its distinct visitors where this takes 22, and 20 ms for a sum against 4."""
    values = rows[key]
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        uniques = pd.Index(np.asarray(values.cat.categories, dtype=object))
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        codes = codes.astype(np.int64)
    if keep is not None:
        codes = np.where(keep, codes, -1)
    groups, keyed = len(uniques), codes >= 0
    size = np.bincount(codes[keyed], minlength=groups)
    found = {}
    for name, (column, how) in measures.items():
        if how == "size":
            found[name] = size
        elif how == "sum":
            column_values = rows[column].to_numpy()
            sums = np.bincount(codes[keyed], weights=column_values[keyed], minlength=groups)
            integral = np.issubdtype(column_values.dtype, np.integer)
            found[name] = sums.astype(np.int64) if integral else sums
        elif how == "nunique":
            found[name] = _distinct(codes, groups, rows[column].to_numpy())
        else:
            raise ValueError(f"no such aggregation here: {how}")
    present = size > 0  # observed groups only, as the groupby's `observed=True`
    return pd.DataFrame({key: uniques[present], **{n: v[present] for n, v in found.items()}})


def _distinct(codes: np.ndarray, groups: int, values: np.ndarray) -> np.ndarray:
    """How many distinct values (NaN: none) each group code 0..groups-1 has. Visitor and visit
    keys are whole numbers held as floats (rows of one day share the day's high bits), so a
    group and a key make one int64 and a hash of those counts each pair once."""
    keyed = codes >= 0
    if values.dtype.kind == "f":
        keyed &= ~np.isnan(values)
        keys = values[keyed].astype(np.int64)
    else:
        keys, _ = pd.factorize(values[keyed], use_na_sentinel=True)
        keys = keys.astype(np.int64)
    if not len(keys):
        return np.zeros(groups, dtype=np.int64)
    low = int(keys.min())
    span = int(keys.max()) - low + 1
    if groups * span >= 2**62:  # the pair would not fit one int64: hash pairs of columns
        pairs = pd.DataFrame({"g": codes[keyed], "k": keys}).drop_duplicates()
        return np.bincount(pairs["g"].to_numpy(), minlength=groups)
    pairs = pd.unique(codes[keyed] * span + (keys - low))
    return np.bincount(pairs // span, minlength=groups)


@reader("summary")
def _summary(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    totals = {name: rows[name].sum() for name in ("visits", "pageviews", "bounces", "seconds")}
    return pd.DataFrame([{"visitors": rows["visitor_id"].nunique(), **totals}])


@reader("events")
def _events(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return pd.DataFrame([{"events": rows["events"].sum()}])


def _bucket(days: pd.Series, unit: str) -> pd.Series:
    """The start of the day/week (Monday)/month each day falls in, like `time_bucket`."""
    if unit == "week":
        return days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    if unit == "month":
        return days.dt.to_period("M").dt.to_timestamp()
    return days


@reader("traffic_day")
def _traffic(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    rows = rows.assign(bucket=_bucket(rows["day"], filters.bucket)) if len(rows) else rows
    return _grouped(rows, ["bucket"], pageviews=("pageviews", "sum"),
                    visitors=("visitor_id", "nunique"))  # fmt: skip


@reader("pages")
def _pages(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return _grouped(pages, ["path"], pageviews=("pageviews", "sum"),
                    visitors=("visitor_id", "nunique"))  # fmt: skip


def _entered(rows: pd.DataFrame) -> pd.DataFrame:
    """Each visit's first row, for visits with an entry page view (the referrer of one without
    is None; of one with, a host or '(direct)')."""
    return rows[(rows["visits"] == 1) & rows["referrer"].notna()]


def _entry_counts(rows: pd.DataFrame, keys: dict[str, pd.Series]) -> pd.DataFrame:
    """Visits and their entry page views' distinct visitors by `keys`."""
    rows = rows.assign(**keys)
    return _grouped(rows, list(keys), visits=("visits", "size"),
                    visitors=("entry_visitor", "nunique"))  # fmt: skip


@reader("entry_pages")
def _entry_pages(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    rows = _entered(rows)
    return _entry_counts(rows, {"path": rows["entry"].astype(object).fillna(UNKNOWN)})


@reader("referrers")
def _referrers(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    rows = _entered(rows)
    return _entry_counts(rows, {"referrer": rows["referrer"]})


@reader("utm")
def _utm(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    rows = _entered(rows)
    rows = rows[rows[list(UTM_KEYS)].notna().any(axis=1)]
    return _entry_counts(rows, {k: rows[k].astype(object).fillna("") for k in UTM_KEYS})


def _visitors_reader(name: str) -> None:
    """Distinct visitors by one of the visit rows' own browser, os, device or country."""

    def read(rows: pd.DataFrame, pages: pd.DataFrame, filters: Scope) -> pd.DataFrame:
        keep = rows["visitor_id"].notna().to_numpy() & rows[name].notna().to_numpy()
        return _grouped(rows, [name], keep, visitors=("visitor_id", "nunique"))

    reader(name)(read)


for _name in WHO:
    _visitors_reader(_name)


# --- event parts: any visit-level and event-level filters --------------------------------------


def _part_keep(segment: Segment, p: Plan, kind: str) -> np.ndarray:
    """Which event parts (of `kind`, parts or details) the segment keeps: each event-level
    condition on the part's own value, each visit-level one on its visit's stored values (a
    part without a visit has none: kept only when no condition is visit-level), once per plan,
    segment and request."""
    cache = request.__dict__.setdefault("rollup_part_keep", {}) if has_request_context() else {}
    if (p, segment) not in cache:
        days = _days(p, kind)
        keep = np.ones(len(days), dtype=bool)
        judged = [c for c in segment.conditions if c.dimension in JUDGED]
        for condition in segment.conditions:
            if condition.dimension in EVENT_LEVEL:
                keep &= _matched(days.column(EVENT_LEVEL[condition.dimension]), condition)
            elif condition.is_prop:
                keep &= _prop_matched(days.column("props"), condition)
        if judged:
            visits = _days(p, "visits")
            kept = np.ones(len(visits), dtype=bool)
            for condition in judged:
                kept &= _matched(visits.column(JUDGED[condition.dimension]), condition)
            found = pd.Series(days.column("visit")).isin(visits.column("visit")[kept])
            keep &= found.to_numpy()
        cache[p, segment] = keep
    return cache[p, segment]


def _kept_parts(filters: Scope, p: Plan, columns: tuple[str, ...]) -> pd.DataFrame:
    """The `columns` of the event parts the segment keeps: of the details when a condition is
    on an item or a property, else of the parts."""
    segment = filters.segment
    kind = "details" if _detailed(segment) else "parts"
    cache = request.__dict__.setdefault("rollup_kept_parts", {}) if has_request_context() else {}
    if (p, segment, columns) not in cache:  # the three entry cards read the same columns
        cache[p, segment, columns] = _days(p, kind).frame(columns, _part_keep(segment, p, kind))
    return cache[p, segment, columns]


def _prop_matched(props: pd.Categorical, condition) -> np.ndarray:
    """Which groups a `prop.KEY` condition keeps, by their properties' text: each distinct text
    is read once, by the database (`_prop_values`)."""
    wanted = set(condition.values)
    found = [value in wanted for value in _prop_values(list(props.categories), condition.prop_key)]
    hit = np.array([*found, False])[props.codes]  # code -1: no properties, no value
    return ~hit if condition.negated else hit


def _prop_values(texts: list[str], key: str) -> list[str | None]:
    """Each properties text's value at `key`, read by the raw filter's own SQL
    (`segment.prop_value`) so that both compare the very same text (a number, a nested object
    or a boolean reads differently in each database)."""
    found: list[str | None] = []
    for at in range(0, len(texts), 5000):
        chunk = texts[at : at + 5000]
        if dialect() == "postgresql":
            listed = (
                func.unnest(literal(chunk, ARRAY(Text)))
                .table_valued("t", with_ordinality="n")
                .render_derived(name="listed")
            )
            rows = select((listed.c.n - 1).label("n"), cast(listed.c.t, JSONB).label("props"))
        else:
            listed = func.json_each(literal(json.dumps(chunk))).table_valued("key", "value")
            rows = select(listed.c.key.label("n"), listed.c.value.label("props"))
        rows = rows.subquery("stored_props")
        values = dict(db.session.execute(select(rows.c.n, prop_value(rows, key))).all())
        found += [values.get(n) for n in range(len(chunk))]
    return found


PartReader = Callable[[pd.DataFrame, Scope], pd.DataFrame]  # (kept event parts, scope)
PART_READERS: dict[str, tuple[PartReader, tuple[str, ...]]] = {}
part_reader = _registrar(PART_READERS)
ENTRY_PARTS = ("visit", "first_view", "path", "visitor_id", "referrer", *UTM_KEYS)


def _per_visit(parts: pd.DataFrame) -> pd.DataFrame:
    """The kept parts of each visit summed: its events, page views, first and last time."""
    found = parts[parts["visit"].notna()]
    if found.empty:
        return pd.DataFrame(columns=["events", "pageviews", "first_at", "last_at"])
    return found.groupby("visit", sort=False).agg(
        events=("events", "sum"), pageviews=("pageviews", "sum"),
        first_at=("first_at", "min"), last_at=("last_at", "max"),
    )  # fmt: skip


@part_reader("summary", "visit", "visitor_id", "events", "pageviews", "first_at", "last_at")
def _parts_summary(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    visits = _per_visit(parts)
    bounced = (visits["events"] == 1) & (visits["pageviews"] == 1)
    return pd.DataFrame([{
        "visitors": parts["visitor_id"].nunique(), "visits": len(visits),
        "pageviews": parts["pageviews"].sum(), "bounces": int(bounced.sum()),
        "seconds": float((visits["last_at"] - visits["first_at"]).sum()),
    }])  # fmt: skip


@part_reader("events", "events")
def _parts_events(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return pd.DataFrame([{"events": parts["events"].sum()}])


@part_reader("traffic_day", "day", "pageviews", "visitor_id")
def _parts_traffic(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return _traffic(parts, parts, filters)


@part_reader("pages", "pageviews", "path", "visitor_id")
def _parts_pages(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    viewed = parts[(parts["pageviews"] > 0) & parts["path"].notna()]
    return _pages(viewed, viewed, filters)


def _entries(parts: pd.DataFrame) -> pd.DataFrame:
    """Each visit's first kept page view: the part holding it, as a visit row whose entry, its
    visitor, referrer and UTM are that page view's (what the entry cards read). Found once per
    frame and request: the three entry cards read the same frame (`_kept_parts`)."""
    if not has_request_context():
        return _first_views(parts)
    cache = request.__dict__.setdefault("rollup_entries", {})
    if id(parts) not in cache:  # the frame is kept with it: its id is not reused meanwhile
        cache[id(parts)] = (parts, _first_views(parts))
    return cache[id(parts)][1]


def _first_views(parts: pd.DataFrame) -> pd.DataFrame:
    viewed = parts[parts["visit"].notna() & (parts["first_view"] > 0)]
    if viewed.empty:
        return pd.DataFrame(columns=["entry", "entry_visitor", "referrer", *UTM_KEYS, "visits"])
    first = viewed.loc[viewed.groupby("visit", sort=False)["first_view"].idxmin()]
    return first.rename(columns={"path": "entry", "visitor_id": "entry_visitor"}).assign(visits=1)


@part_reader("entry_pages", *ENTRY_PARTS)
def _parts_entry_pages(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return _entry_pages(_entries(parts), parts, filters)


@part_reader("referrers", *ENTRY_PARTS)
def _parts_referrers(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return _referrers(_entries(parts), parts, filters)


@part_reader("utm", *ENTRY_PARTS)
def _parts_utm(parts: pd.DataFrame, filters: Scope) -> pd.DataFrame:
    return _utm(_entries(parts), parts, filters)


def _parts_visitors_reader(name: str) -> None:
    """Distinct visitors by the kept parts' browser, os, device or country (as for visits).
    The four cards read one frame of all four columns, built once (`_kept_parts`)."""
    read = READERS[name][0]
    part_reader(name, "visitor_id", *WHO)(lambda parts, filters: read(parts, parts, filters))


for _name in WHO:
    _parts_visitors_reader(_name)
