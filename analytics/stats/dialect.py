"""The SQL that differs between PostgreSQL and SQLite, kept in one place.

Time buckets come back as a timestamp (PostgreSQL) or as ISO text (SQLite); callers pass both to
`pandas.to_datetime`, which reads either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import DateTime, Float, case, cast, func, literal, text
from sqlalchemy.sql import ColumnElement

from ..extensions import db

BUCKETS = ("minute", "hour", "day", "week", "month")

# SQLite has no date_trunc: strftime formats each unit's start (weeks start on Monday, as in
# PostgreSQL: "weekday 0" moves to the coming Sunday, "-6 days" back to its Monday).
_SQLITE_BUCKETS: dict[str, tuple[str, ...]] = {
    "minute": ("%Y-%m-%d %H:%M:00",),
    "hour": ("%Y-%m-%d %H:00:00",),
    "day": ("%Y-%m-%d 00:00:00",),
    "week": ("%Y-%m-%d 00:00:00", "weekday 0", "-6 days"),
    "month": ("%Y-%m-01 00:00:00",),
}


def dialect() -> str:
    """'postgresql' or 'sqlite': the database the session talks to."""
    return db.session.get_bind().dialect.name


@contextlib.contextmanager
def without_nested_loops() -> Iterator[None]:
    """Plan the statements run inside without nested-loop joins (PostgreSQL; elsewhere a no-op).

    For joins of CTEs, whose rows the planner cannot estimate (a filter on a computed column
    gets a default 0.5 %): it expects a handful of rows where there are thousands, and a nested
    loop then compares every pair. Set for the transaction, put back after the block."""
    if dialect() != "postgresql":
        yield
        return
    db.session.execute(text("SET LOCAL enable_nestloop = off"))
    yield  # on an error the transaction is rolled back, and the setting with it
    db.session.execute(text("RESET enable_nestloop"))


def time_bucket(column: ColumnElement, unit: str) -> ColumnElement:
    """The start of the hour/day/week/month that `column` falls in."""
    if unit not in BUCKETS:
        raise ValueError(f"unknown time bucket {unit!r}; expected one of {BUCKETS}")
    if dialect() == "postgresql":
        return func.date_trunc(literal(unit), column)
    fmt, *modifiers = _SQLITE_BUCKETS[unit]
    return func.strftime(fmt, column, *modifiers)


def text_time(column: ColumnElement) -> ColumnElement:
    """A 'YYYY-MM-DD HH:MM:SS' text column as a time that `time_bucket` takes."""
    if dialect() == "postgresql":
        return cast(column, DateTime)
    return column  # SQLite's date functions read the text itself


def seconds_between(start: ColumnElement, end: ColumnElement) -> ColumnElement:
    """`end - start` in seconds, as a float."""
    if dialect() == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def url_host(column: ColumnElement) -> ColumnElement:
    """'https://host.example/path' -> 'host.example' (stored referrers always carry a scheme)."""
    find = func.strpos if dialect() == "postgresql" else func.instr
    rest = func.substr(column, find(column, "://") + 3)
    slash = find(rest, "/")
    return case((slash > 0, func.substr(rest, 1, slash - 1)), else_=rest)


def path_matches(column: ColumnElement, pattern: str) -> ColumnElement:
    """`column` matches a goal's path, where `*` stands for any run of characters and nothing
    else is special; case-sensitive on both databases (SQLite's LIKE ignores case, so there the
    pattern becomes a GLOB, whose own wildcards `?` and `[` are bracketed to stay literal)."""
    if dialect() == "postgresql":
        like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(like.replace("*", "%"), escape="\\")
    glob = "".join({"?": "[?]", "[": "[[]"}.get(char, char) for char in pattern)
    return column.op("GLOB")(glob)
