"""The single write path: every source stores its events and rejections through this module.

On PostgreSQL, events go in as one statement per request, whatever its size: `INSERT ... SELECT
FROM json_populate_recordset(NULL::events, <the rows as one JSON array>) ON CONFLICT DO NOTHING
RETURNING id` (parsed once, one round trip, one parameter, and the rollup triggers fire once per
statement; a lone row as VALUES), on a raw pooled
psycopg connection in autocommit (one round trip, no BEGIN/COMMIT, no SQLAlchemy on the way).
`RETURNING id` tells the request which of its rows were new. With INGEST_GROUP_COMMIT on,
requests that arrive while a write is in flight wait, and the next write takes all their rows
(`GroupWriter`): one statement and one commit for the group, the JSON form prepared on the
writer's own connection and run through libpq. A caller answers 2xx only after
`store_events` has returned, i.e. after the statement holding its rows committed; a failed
statement raises `StoreFailed` in every request it held (a 503), and stored nothing.

SQLite (one writer at a time) keeps a positional executemany in a transaction.
Rows whose dedupe key is already present (a retried beacon, a re-imported file) are skipped by
the database, not by a prior read.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import psycopg
from flask import Flask, current_app
from psycopg import pq
from psycopg.types.json import Jsonb
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..extensions import db
from ..models import Event, EventError, new_event_id, utcnow
from .payload import MAX_STORED_DEPTH, clean_text, depth, json_size, scrub

# Requests of at most this many rows share commits; a larger one has a commit's worth of rows
# already, and queueing it behind the write in flight only cut the database's concurrency
# (50-event batches in the day's first bench run: 0.60x bare executemany grouped, 1.00x alone).
GROUP_ROWS = 10


class StoreFailed(Exception):
    """The group holding this request's events failed: nothing of it was stored (a 503)."""


RAW_BODY_CAP = 8 * 1024  # bytes of an unparsable body kept for the operator to read

# Every row handed to the INSERT has exactly these keys (executemany needs uniform rows).
EVENT_COLUMNS = tuple(c.name for c in Event.__table__.columns)
_DEFAULTS: dict[str, Any] = {name: None for name in EVENT_COLUMNS} | {"schema_version": 1}


def event_row(**fields: Any) -> dict[str, Any]:
    """Build a complete `events` row from the fields a source knows; the rest get defaults."""
    row = _DEFAULTS | fields
    if row["id"] is None:
        row["id"] = new_event_id()
    if row["received_at"] is None:
        row["received_at"] = utcnow()
    if row["occurred_at"] is None:
        row["occurred_at"] = row["received_at"]
    return row


def _insert_sql(mark: str) -> str:
    """INSERT ... ON CONFLICT DO NOTHING with positional parameters, for the DB-API directly.

    Short positional SQL is parsed once and cached by the driver. (SQLAlchemy's compiled
    multi-VALUES form re-parsed a statement of thousands of named parameters on every batch.)
    """
    columns = ", ".join(EVENT_COLUMNS)
    marks = ", ".join([mark] * len(EVENT_COLUMNS))
    return f"INSERT INTO events ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def _rows_sql() -> str:
    """One statement for any number of rows: the rows as one JSON array, read into `events`'
    own row type (each value through its column type's input, as a literal would be)."""
    columns = ", ".join(EVENT_COLUMNS)
    return (
        f"INSERT INTO events ({columns}) SELECT {columns} "
        "FROM json_populate_recordset(NULL::events, %s::json) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """Times are stored as naive UTC (the columns' kind): a time with an offset is converted,
    never stored as its local reading."""
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _json_value(value: Any) -> str:
    """What `json.dumps` cannot write itself: ids, and times (an offset in the text would be
    ignored by a `timestamp` column, hence naive UTC)."""
    if isinstance(value, dt.datetime):
        return _naive_utc(value).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"an events column cannot hold {type(value).__name__}")


# Made once (`json.dumps` with options builds an encoder at every call: 1 us of a lone row's 6).
_ROWS_ENCODER = json.JSONEncoder(default=_json_value, separators=(",", ":"))


def rows_json_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows -> the one JSON parameter of `ROWS_SQL`, as UTF-8.

    orjson writes ids and naive times as `_json_value` does, in C: 0.4 against 6.2 us for a
    lone row. Rows it would write otherwise go through `json`: a time with an offset (orjson
    would keep the offset, which a `timestamp` column ignores), and what orjson refuses (an
    integer past 64 bits in `props`, a lone surrogate; `json` writes them, and the database
    then takes or refuses them as before).
    """
    for row in rows:
        for at in ("occurred_at", "received_at"):
            if getattr(row[at], "tzinfo", None) is not None:
                return _ROWS_ENCODER.encode(rows).encode()
    try:
        return orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return _ROWS_ENCODER.encode(rows).encode()  # ASCII: non-ASCII as \u escapes


def rows_json(rows: list[dict[str, Any]]) -> str:
    """Rows -> the one JSON parameter of `ROWS_SQL`, as text (for a driver's parameter)."""
    return rows_json_bytes(rows).decode()


_SQL = {"postgresql": _insert_sql("%s"), "sqlite": _insert_sql("?")}
# Measured against one array per column through `unnest` (50-row batches, one process): 6 against
# 15.6 us of client CPU per row (psycopg writes arrays in Python, json.dumps is C), and 26 against
# 35 us of wall time per row, so the database's side is no dearer.
ROWS_SQL = _rows_sql()
# A group of one row goes in as VALUES: binding it as arrays cost more than the row itself
# (measured: 152 against 64 us of client CPU, 508 against 258 us per insert).
ONE_ROW_SQL = _SQL["postgresql"] + " RETURNING id"
_JSON_AT = EVENT_COLUMNS.index("props")
_ID_AT = EVENT_COLUMNS.index("id")
_TIMES_AT = (EVENT_COLUMNS.index("occurred_at"), EVENT_COLUMNS.index("received_at"))


def _postgres_params(row: dict[str, Any]) -> tuple[Any, ...]:
    """One row for the positional INSERT (a lone row, and the bench's bare executemany)."""
    values = [row[name] for name in EVENT_COLUMNS]
    for at in _TIMES_AT:
        values[at] = _naive_utc(values[at])
    if values[_JSON_AT] is not None:
        values[_JSON_AT] = Jsonb(values[_JSON_AT])
    return tuple(values)


def _sqlite_params(row: dict[str, Any]) -> tuple[Any, ...]:
    """Store values exactly as SQLAlchemy's SQLite types do, so reads through the ORM agree."""
    values = [row[name] for name in EVENT_COLUMNS]
    values[_ID_AT] = values[_ID_AT].hex
    for at in _TIMES_AT:
        values[at] = _naive_utc(values[at]).strftime("%Y-%m-%d %H:%M:%S.%f")
    if values[_JSON_AT] is not None:
        values[_JSON_AT] = json.dumps(values[_JSON_AT])
    return tuple(values)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert rows on an open connection (in the caller's transaction, if any); return how many.

    Rows whose (site_id, occurred_at, dedupe_key) is already stored are skipped by the database;
    the count returned excludes them.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        if len(rows) == 1:
            return len(conn.exec_driver_sql(ONE_ROW_SQL, _postgres_params(rows[0])).all())
        return len(conn.exec_driver_sql(ROWS_SQL, (rows_json(rows),)).all())
    params = [_sqlite_params(row) for row in rows]
    return conn.exec_driver_sql(_SQL["sqlite"], params if len(params) > 1 else params[0]).rowcount


def _execute(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> set[Any]:
    """The one statement for `rows` on an autocommit connection; return the ids it stored."""
    if len(rows) == 1:
        sql, params = ONE_ROW_SQL, _postgres_params(rows[0])
    else:
        sql, params = ROWS_SQL, (rows_json(rows),)
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return {found[0] for found in cur.fetchall()}


# The group writer's statement, prepared once on its connection and run through libpq itself:
# psycopg's cursor (adapting the parameters, managing its own prepared statements, waiting in
# Python) cost about 70 us of client CPU per statement more, measured apart (one process,
# interleaved). One form for every group size: one row as JSON cost the server no more than as
# VALUES in the same measurement, and the JSON is written in C.
PREPARED = b"analytics_ingest_rows"
PREPARED_SQL = ROWS_SQL.replace("%s", "$1").encode()


def _execute_prepared(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> set[Any] | None:
    """`PREPARED` for `rows` on an autocommit connection; return the ids it stored, or None
    when it stored every row (the common case, which then reads no id back).

    libpq's blocking call releases the GIL while it waits, as psycopg's own wait does. A failure
    raises psycopg's errors as a cursor would: OperationalError when the connection is lost.
    """
    pgconn = conn.pgconn
    res = pgconn.exec_prepared(PREPARED, [rows_json_bytes(rows)])
    if res.status != pq.ExecStatus.TUPLES_OK:
        message = (res.error_message or pgconn.error_message).decode("utf-8", "replace").strip()
        if pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError(message or "the connection was lost")
        raise psycopg.DatabaseError(message or f"the insert ended as {res.status.name}")
    if res.ntuples == len(rows):  # a duplicate, even of a row in the same group, is skipped
        return None
    return {uuid.UUID(res.get_value(i, 0).decode()) for i in range(res.ntuples)}


def _insert_returning(engine: Engine, rows: list[dict[str, Any]]) -> set[Any]:
    """One autocommitted statement on a raw pooled psycopg connection; return the new ids.

    A connection found dead (the database restarted since it was pooled) is replaced and the
    write retried once: the statement is atomic, so a failed attempt stored nothing.
    """
    for attempt in (1, 2):
        try:
            pooled = engine.raw_connection()
        except psycopg.Error as exc:  # the server is down, or refuses connections for now
            raise StoreFailed(str(exc)) from exc
        conn: psycopg.Connection = pooled.driver_connection
        try:
            conn.autocommit = True  # one statement: its own transaction, no BEGIN/COMMIT trips
            new = _execute(conn, rows)
            conn.autocommit = False  # as SQLAlchemy expects it back in the pool
            pooled.close()
            return new
        except psycopg.Error as exc:
            # Whatever the state of this connection, it does not go back to the pool.
            pooled.invalidate(exc)
            if attempt == 1 and isinstance(exc, psycopg.OperationalError):
                # e.g. the server restarted since this connection was pooled: so did its
                # siblings, so the pool starts afresh (as SQLAlchemy does on a disconnect)
                engine.dispose()
                continue
            raise StoreFailed(str(exc)) from exc
    raise AssertionError("unreachable")


class _Waiting:
    """One request's rows in the queue, and what became of them."""

    __slots__ = ("rows", "wake", "finished", "new", "error")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        # Held from birth; released to wake the request (its group is written, or it leads the
        # next one). A bare lock costs a third of an Event, which builds a Condition each time.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.finished = False
        self.new: set[Any] | None = set()  # None: every row of the group was new
        self.error: BaseException | None = None


class GroupWriter:
    """Group commit across a process's request threads, adding no wait when nothing is in flight.

    The first request writes at once. Requests arriving while that write runs queue their rows;
    when it ends, the first of them leads the next write with every queued row. Each request
    returns only when the statement holding its rows committed, or raises StoreFailed when it
    failed (then every request of that group does).

    A write that ends wakes the next leader before its own group's requests. Woken after them,
    the leader waited for the GIL behind every one of them answering, and the database idled
    meanwhile: `/collector` ran at 2,866-3,272 events/s that way against 3,871-4,047 this way
    (three interleaved 10 s runs each, 2 x 16 gthread, on a database of 1.75 M events; the
    ingest suite, on fresh databases, saw the cores idle less but no gain beyond its spread;
    README, Benchmarks).

    There is one write in flight at most, so the writer keeps one connection of its own, in
    autocommit, out of the pool: a pool checkout and checkin per write, and switching autocommit
    on and off, were 13 % of a single event's instructions in the process (`python -m bench
    instructions`, README). Its statement is prepared once, when the connection is made
    (`_execute_prepared`). It is closed when the engine is disposed, and replaced when a write
    finds it dead.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()  # tests hold it to make a group form
        self._queue: list[_Waiting] = []
        self._busy = False
        self._conn: psycopg.Connection | None = None  # used by the leader of the moment only
        event.listen(engine, "engine_disposed", self._forget)

    def write(self, rows: list[dict[str, Any]]) -> int:
        """Store rows (in some group); return how many were new."""
        me = _Waiting(rows)
        with self.lock:
            self._queue.append(me)
            lead = not self._busy
            self._busy = True
        if not lead:
            me.wake.acquire()
        if not me.finished:  # first in, or handed the lead by the write before
            self._lead()
        if me.error is not None:
            raise StoreFailed(f"the write of this group failed: {me.error}") from me.error
        if me.new is None:
            return len(rows)
        return sum(1 for row in rows if row["id"] in me.new)

    def pending(self) -> int:
        """Requests queued behind the write in flight."""
        with self.lock:
            return len(self._queue)

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is None or conn.closed:
            try:
                pooled = self.engine.raw_connection()  # the engine's settings and connect hooks
            except psycopg.Error as exc:  # the server is down, or refuses connections for now
                raise StoreFailed(str(exc)) from exc
            conn = self._conn = pooled.driver_connection
            pooled.detach()  # ours from now on: the pool neither counts nor recycles it
            conn.autocommit = True  # one statement: its own transaction, no BEGIN/COMMIT trips
            # The rows go to libpq as UTF-8 bytes (`rows_json_bytes`), whatever the database's
            # encoding: the server converts them, or refuses what its encoding cannot hold.
            res = conn.pgconn.exec_(b"SET client_encoding TO 'UTF8'")
            if res.status == pq.ExecStatus.COMMAND_OK:
                res = conn.pgconn.prepare(PREPARED, PREPARED_SQL)
            if res.status != pq.ExecStatus.COMMAND_OK:
                self._forget()
                raise StoreFailed(res.error_message.decode("utf-8", "replace").strip())
        return conn

    def _insert(self, rows: list[dict[str, Any]]) -> set[Any] | None:
        """The group's one statement on the writer's connection; return the new ids (None: all
        of them). A dead connection (the database restarted) is replaced and the write retried
        once: the statement is atomic, so a failed attempt stored nothing."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return _execute_prepared(conn, rows)
            except psycopg.Error as exc:
                self._forget()  # whatever its state, the next write starts on a new one
                if attempt == 1 and isinstance(exc, psycopg.OperationalError):
                    self.engine.dispose()  # its pooled siblings are as dead
                    continue
                raise StoreFailed(str(exc)) from exc
        raise AssertionError("unreachable")

    def _forget(self, *_: Any) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _lead(self) -> None:
        with self.lock:
            group, self._queue = self._queue, []
        new: set[Any] | None = set()
        error: BaseException | None = None
        try:
            new = self._insert([row for w in group for row in w.rows])
        except BaseException as exc:  # every request of the group must hear of it
            error = exc
        finally:
            # The next write's leader is woken before this group's requests: first in line for
            # the GIL, it sends the next statement while they answer, rather than after them.
            with self.lock:
                if self._queue:
                    self._queue[0].wake.release()  # not finished: it leads the next write
                else:
                    self._busy = False
            for waiting in group:
                waiting.new, waiting.error, waiting.finished = new, error, True
                waiting.wake.release()


def group_writer(app: Flask, engine: Engine | None = None) -> GroupWriter:
    """This process's group writer for the app's engine (made on first use, after the fork)."""
    engine = engine if engine is not None else db.engine
    writer = app.extensions.get("analytics.writer")
    if writer is None or writer.engine is not engine:
        writer = app.extensions["analytics.writer"] = GroupWriter(engine)
    return writer


def store_events(rows: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None) -> int:
    """Store events (and rejections) and commit; return how many events were stored.

    The count is less than len(rows) when some rows were duplicates of stored ones. On
    PostgreSQL, events alone are one autocommitted statement (shared with concurrent requests
    when INGEST_GROUP_COMMIT is on); events with rejections, and SQLite, one transaction.

    A connection found dead (the database restarted since it was pooled) is replaced and the
    write retried once; the pool does not ping before every checkout, which would cost a round
    trip per request.
    """
    if not rows and not errors:
        return 0
    engine = db.engine  # looked up once: each look-up goes through the app context
    if not errors and engine.dialect.name == "postgresql":
        app = current_app._get_current_object()
        if app.config.get("INGEST_GROUP_COMMIT") and len(rows) <= GROUP_ROWS:
            return group_writer(app, engine).write(rows)
        new = _insert_returning(engine, rows)
        return sum(1 for row in rows if row["id"] in new)
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                stored = insert_events(conn, rows)
                record_errors(errors or [], conn)
            return stored
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def error_row(
    endpoint: str,
    reason: str,
    *,
    payload: Any = None,
    raw: bytes | str | None = None,
    body_size: int | None = None,
    site_id: int | None = None,
) -> dict[str, Any]:
    """Build an `event_errors` row that any database accepts, whatever was sent.

    The parsed payload is kept when there is one (cleaned of what databases refuse); a payload
    nested too deeply to store as JSON, or an unparsable body, is kept as text, capped, with the
    full size beside it.
    """
    if payload is not None:
        payload = scrub(payload)
        if depth(payload) > MAX_STORED_DEPTH:
            raw, payload = (raw if raw is not None else str(payload)), None
    raw_text = None
    if raw is not None:
        if isinstance(raw, bytes):
            size = len(raw)
            raw_text = raw[:RAW_BODY_CAP].decode("utf-8", errors="replace")
        else:
            size = len(raw.encode("utf-8", "replace"))
            raw_text = raw[:RAW_BODY_CAP]
        raw_text = clean_text(raw_text)
        body_size = body_size if body_size is not None else size
    elif body_size is None:
        body_size = json_size(payload) if payload is not None else 0
    return {
        "received_at": utcnow(),
        "endpoint": endpoint[:64],
        "site_id": site_id,
        "reason": clean_text(reason),
        "payload": payload,
        "raw_body": None if payload is not None else raw_text,
        "body_size": body_size,
    }


def record_errors(rows: Iterable[Mapping[str, Any]], conn: Connection | None = None) -> None:
    """Store rejected payloads, in the caller's transaction when one is given."""
    rows = list(rows)
    if not rows:
        return
    if conn is not None:
        conn.execute(EventError.__table__.insert(), rows)
        return
    with db.engine.begin() as own:
        own.execute(EventError.__table__.insert(), rows)


def record_error(endpoint: str, reason: str, **kwargs: Any) -> None:
    """Store one rejected payload (see `error_row` for the arguments)."""
    record_errors([error_row(endpoint, reason, **kwargs)])
