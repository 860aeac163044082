"""Raw exports as CSV written by the database, so Python relays text instead of building cells.

Turning a million rows into CSV cells in Python (times, ids, the formula guard, csv.writer) is
what made a raw export slow. Here the SELECT computes every cell as text, as `export.cell` would,
and PostgreSQL writes the CSV itself with COPY: Python only swaps each row's LF for CRLF and
sends the bytes on. SQLite has no COPY; its rows, already text, go through csv.writer in batches.

The output is what `export.csv_chunks` makes of the same rows, with two deliberate exceptions:
on PostgreSQL the guard's number test accepts ASCII digits only (so "-٣" is defused rather than
left alone), and JSON columns are the database's own text of them, as they were before this
module (PostgreSQL's jsonb text; SQLite's stored text).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Integer,
    Select,
    String,
    Text,
    Uuid,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
)
from sqlalchemy.sql.elements import ColumnElement

from .export import FORMULA_STARTS, guard

CHUNK_BYTES = 256 * 1024  # roughly how much is handed to the socket at a time
SQLITE_BATCH = 5000  # rows fetched per round on SQLite
# `export.NUMBER`, in PostgreSQL's regex dialect. Python's `$` also matches before a final newline.
NUMBER_SQL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\n?$"
FORMULA_CODES = [ord(c) for c in FORMULA_STARTS]
ISO_SECONDS = 'YYYY-MM-DD"T"HH24:MI:SS'


def _postgres_cell(column: ColumnElement) -> ColumnElement:
    """The column as PostgreSQL should write it: text exactly as `export.cell` renders it."""
    kind = column.type
    if isinstance(kind, DateTime):
        # datetime.isoformat(): microseconds only when there are some.
        return case(
            (column == func.date_trunc("second", column), func.to_char(column, ISO_SECONDS)),
            else_=func.to_char(column, ISO_SECONDS + ".US"),
        )
    if isinstance(kind, Uuid):
        return cast(column, Text)
    if isinstance(kind, JSON):
        return _postgres_guard(cast(column, Text))
    if isinstance(kind, String):
        return _postgres_guard(column)
    if isinstance(kind, Integer):
        return column
    raise TypeError(f"no CSV cell for {column.name} ({kind!r})")


def _postgres_guard(text: ColumnElement) -> ColumnElement:
    """`export.guard` in SQL; and '' as NULL, since COPY quotes an empty string and Python not."""
    return case(
        (
            and_(func.ascii(text).in_(FORMULA_CODES), not_(text.regexp_match(NUMBER_SQL))),
            literal("'", Text) + text,
        ),
        else_=func.nullif(text, ""),
    )


def _sqlite_cell(column: ColumnElement) -> ColumnElement:
    """The column as text on SQLite, from the forms SQLAlchemy's SQLite types store."""
    kind = column.type
    if isinstance(kind, DateTime):
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'.
        date, clock = func.substr(column, 1, 10), func.substr(column, 12)
        return case(
            (func.substr(column, 20).in_(["", ".000000"]), date + "T" + func.substr(column, 12, 8)),
            else_=date + "T" + clock,
        )
    if isinstance(kind, Uuid):
        # Stored as 32 hex digits.
        parts = [func.substr(column, start, size) for start, size in _UUID_PARTS]
        return parts[0] + "-" + parts[1] + "-" + parts[2] + "-" + parts[3] + "-" + parts[4]
    if isinstance(kind, JSON):
        return _sqlite_guard(cast(column, Text))
    if isinstance(kind, String):
        return _sqlite_guard(column)
    if isinstance(kind, Integer):
        return column
    raise TypeError(f"no CSV cell for {column.name} ({kind!r})")


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _sqlite_guard(text: ColumnElement) -> ColumnElement:
    """Python's guard, called only for the rare cell that starts like a formula."""
    return case(
        (func.substr(text, 1, 1).in_(list(FORMULA_STARTS)), func.csv_guard(text)),
        else_=text,
    )


def csv_select(stmt: Select, dialect: str) -> Select:
    """`stmt` with each selected column replaced by its CSV cell, labelled with its name."""
    cell = _postgres_cell if dialect == "postgresql" else _sqlite_cell
    return stmt.with_only_columns(*(cell(c).label(c.name) for c in stmt.selected_columns))


def csv_stream(engine: Engine, stmt: Select) -> Iterator[bytes]:
    """Header and rows of `stmt` as UTF-8 CSV (RFC 4180) chunks, read as they are sent.

    Runs on a connection of its own from the pool, returned when the stream ends, fails or is
    dropped by the client (closing the generator runs its `finally`).
    """
    if engine.dialect.name == "postgresql":
        return _postgres_stream(engine, csv_select(stmt, "postgresql"))
    return _sqlite_stream(engine, csv_select(stmt, "sqlite"))


def _postgres_stream(engine: Engine, stmt: Select) -> Iterator[bytes]:
    # COPY takes no server-side parameters: psycopg binds them into the text (`copy(sql, params)`).
    compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    sql = f"COPY ({compiled}) TO STDOUT (FORMAT csv, HEADER)"
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor, cursor.copy(sql, compiled.params) as copy:
            rows: list[Any] = []
            size = 0
            # One message per row (the header too), ending in LF: a row's end is never in doubt,
            # whatever newlines its quoted cells hold.
            for row in copy:
                rows.append(row[:-1])
                size += len(row)
                if size >= CHUNK_BYTES:
                    rows.append(b"")
                    yield b"\r\n".join(rows)
                    rows.clear()
                    size = 0
            rows.append(b"")
            yield b"\r\n".join(rows)
    finally:
        raw.close()


def _sqlite_param(value: Any) -> Any:
    """A bound value in the form SQLAlchemy's SQLite types store, so comparisons agree."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, uuid.UUID):
        return value.hex
    return value


def _sqlite_stream(engine: Engine, stmt: Select) -> Iterator[bytes]:
    compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    params = [_sqlite_param(values[name]) for name in compiled.positiontup or ()]
    raw = engine.raw_connection()
    try:
        raw.driver_connection.create_function("csv_guard", 1, guard, deterministic=True)
        cursor = raw.cursor()
        cursor.execute(str(compiled), params)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([d[0] for d in cursor.description])
        while batch := cursor.fetchmany(SQLITE_BATCH):
            writer.writerows(batch)
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
        if tail := buffer.getvalue():  # the header, when no row matched
            yield tail.encode("utf-8")
        cursor.close()
    finally:
        raw.close()
