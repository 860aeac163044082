"""What the full and the partial recount of a day share: its transaction, the metric SQL run
over a temporary table of events, fact rows, and bulk writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Date, FromClause, column, literal, text, update
from sqlalchemy import table as sql_table

from ..extensions import db
from ..models import RollupPresence
from ..stats.base import METRICS, Metric
from ..stats.dialect import dialect
from .read import SPAN_COLUMNS, key_text, stored_columns

DAY = dt.timedelta(days=1)
FACT_COLUMNS = (
    "site_id", "metric", "day", "k1", "k2", "k3", "k4", "n1", "n2", "n3", "n4", "x"
)  # fmt: skip
KEY_COLUMNS = slice(3, 7)  # k1..k4 in a FACT_COLUMNS tuple
MEASURES = slice(7, 12)  # n1..n4 and x


@dataclass(frozen=True)
class SiteRef:
    id: int


@dataclass(frozen=True)
class DayScope:
    """One UTC day of one site, as the metric SQL expects its filters."""

    site: SiteRef
    start: dt.datetime
    end: dt.datetime
    bucket: str = "day"

    def previous(self) -> DayScope:  # part of the Scope protocol; never used for a day
        return DayScope(self.site, self.start - DAY, self.start, self.bucket)


def as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def begin() -> None:
    """Start a day's transaction; on PostgreSQL one snapshot for all its statements."""
    db.session.rollback()
    if dialect() == "postgresql":
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def param_time(moment: dt.datetime):
    """A time parameter for raw SQL, in the form the column holds on each database."""
    if dialect() == "sqlite":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def marker_row(site_id: int, name: str, day: dt.date) -> tuple:
    """A fact row that only marks a day (`built`, `sliced`): no keys, every count zero."""
    return (site_id, name, day, "", "", "", "", 0, 0, 0, 0, 0.0)


def bulk_insert(table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL (a day's facts are
    thousands of rows), executemany on SQLite."""
    if not rows:
        return
    if dialect() != "postgresql":
        db.session.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


def events_table(
    name: str,
    where: str,
    params: dict,
    columns: tuple[str, ...] = SPAN_COLUMNS,
    source: str = "events",
) -> FromClause:
    """A temporary table of the `source` rows (`events`, or a copy of some) that match `where`
    (SQL over `e`)."""
    query = f"SELECT {', '.join(columns)} FROM {source} e WHERE {where}"
    return temporary_table(name, query, params, columns)


def temporary_table(
    name: str, query: str, params: dict, columns: tuple[str, ...]
) -> FromClause:
    """A temporary table `name` (made again if it exists) of what `query` (SQL text) selects:
    `columns`."""
    db.session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    db.session.execute(text(f"CREATE TEMPORARY TABLE {name} AS {query}"), params)
    return sql_table(name, *(column(c) for c in columns))


def drop(*names: str) -> None:
    for name in names:
        db.session.execute(text(f"DROP TABLE IF EXISTS {name}"))


def spanning(keys: list[tuple[str | None, str | None]], seen_elsewhere: set[tuple[str, str]]):
    """Visitors and visits to keep apart: those seen on other days, and, closed over the day's
    events, whatever shares an event with them."""
    visitors = {key for kind, key in seen_elsewhere if kind == "u"}
    visits = {key for kind, key in seen_elsewhere if kind == "v"}
    grew = bool(visitors or visits)
    while grew:
        grew = False
        for u, v in keys:
            if (u and u in visitors) or (v and v in visits):
                if u and u not in visitors:
                    visitors.add(u)
                    grew = True
                if v and v not in visits:
                    visits.add(v)
                    grew = True
    return visitors, visits


def set_spans(site_id: int, day: dt.date, keys: list[tuple[str, str]], value: bool) -> None:
    """Flag (or unflag) these visitors and visits of the day as spanning days."""
    for kind in ("u", "v"):
        chosen = [key for k, key in keys if k == kind]
        for at in range(0, len(chosen), 500):
            db.session.execute(
                update(RollupPresence)
                .where(
                    RollupPresence.site_id == site_id,
                    RollupPresence.day == day,
                    RollupPresence.kind == kind,
                    RollupPresence.key.in_(chosen[at : at + 500]),
                )
                .values(spans=value)
            )


def day_literal(day: dt.date):
    """The day as a constant column named `day` (a span-event copy's)."""
    return literal(day, Date).label("day")


def fact_rows(site_id: int, day: dt.date, events: FromClause) -> list[tuple]:
    """Every metric's counts over `events` (one day's), as rollup_facts tuples."""
    start = midnight(day)
    site = SiteRef(site_id)
    rows: list[tuple] = []
    for metric in METRICS.values():
        scope = DayScope(site, start, start + DAY, metric.grain or "day")
        rows.extend(metric_rows(metric, site_id, day, metric.counts(scope, events)))
    return rows


def metric_rows(
    metric: Metric, site_id: int, day: dt.date, df: pd.DataFrame, named: list[str] | None = None
) -> list[tuple]:
    """A metric's rows as rollup_facts tuples (FACT_COLUMNS order), each named `metric.name`
    or, given `named`, its own name there (split metrics: one per dimension, the same keys). A
    row whose measures are all zero is not stored: adding it changes no sum (a partial recount
    removes such rows too)."""
    where = stored_columns(metric)
    at = {name: FACT_COLUMNS.index(slot) for name, slot in where.items()}
    out = []
    # Plain lists, not `itertuples` (it builds a namedtuple class at every call), and one call
    # for every dimension of a split metric, not a frame each: in a profile of the tests'
    # refreshes, those frames and calls took a quarter of a split day.
    names = list(df.columns)
    columns = [df[name].tolist() for name in names]
    for n, record in enumerate(zip(*columns, strict=True)):
        row: list = [site_id, named[n] if named else metric.name, day, "", "", "", "", 0, 0, 0,
                     0, 0.0]  # fmt: skip
        for name, value in zip(names, record, strict=True):
            slot = where[name]
            if slot.startswith("k"):
                row[at[name]] = key_text(value)
            elif slot == "x":
                row[at[name]] = float(value or 0.0)
            else:
                row[at[name]] = int(value or 0)
        if any(row[MEASURES]):
            out.append(tuple(row))
    return out
