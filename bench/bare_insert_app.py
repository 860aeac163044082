"""The floor of a durable ingest: a minimal Flask app that parses the JSON body (one event or a
list), INSERTs its rows into `events` with plain psycopg, commits synchronously, answers 204.
One event is one INSERT; a list is one statement over the rows as a JSON array, the faster of
the two bare batch forms the suite measures (about 1.6x `executemany`: 50 statements, and 50
firings of the rollup trigger).

Nothing else: no validation, no visitor hash, no user-agent parse, no asynchronous commit. Its
p99 at 80 % of its own maximum rate is the least this machine can do for the app's
(bench/ingest.py). Configured by the environment gunicorn is started with: DATABASE_URL (the
app's), BENCH_SITE_ID (the site the rows belong to) and BARE_GROUP_COMMIT=1, with which the
requests of a process that arrive while a write is in flight share the next one: our app's
grouping at its barest, shown beside our ratios. (Neither is a bound on ours: these are Flask
apps, and our ingest path skips Flask's request machinery.)
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import psycopg
from flask import Flask, request

from analytics.ingest.writer import _SQL, ROWS_SQL, _postgres_params, event_row, rows_json
from bench.database import libpq_url

SQL = _SQL["postgresql"]  # the positional INSERT of bench/ingest.py's bare executemany
URL = libpq_url(os.environ["DATABASE_URL"])
SITE_ID = int(os.environ["BENCH_SITE_ID"])

app = Flask(__name__)
# One connection per gunicorn thread: a pool as small as can be, and no wait for a connection.
_local = threading.local()


def row(event: dict[str, Any]) -> dict[str, Any]:
    """One event's row: the fields it sends as they are, the rest defaulted as the app's writer
    does."""
    return event_row(
        site_id=SITE_ID,
        source="bare",
        name=event.get("name"),
        session_id=event.get("session"),
        referrer=event.get("referrer"),
    )


def _connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:  # first use, or lost: the request that found it got a 500
        conn = _local.conn = psycopg.connect(URL, autocommit=True)
    return conn


def _insert(rows: list[dict[str, Any]]) -> None:
    conn = _connection()
    # autocommit: each statement is its own transaction, committed before execute returns
    if len(rows) == 1:
        conn.execute(SQL, _postgres_params(rows[0]))
    else:
        conn.execute(ROWS_SQL, (rows_json(rows),)).fetchall()


class _Waiter:
    __slots__ = ("rows", "lock", "written")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.lock = threading.Lock()
        self.lock.acquire()  # released once its rows are written, or to lead the next write
        self.written = False


class _Group:
    """Group commit at its barest: one write in flight per process; requests that find one
    queue, and the first of the queue writes them all when it ends. (A failed write would
    leave its group waiting: a baseline need not survive errors.)"""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[_Waiter] = []
        self.busy = False

    def write(self, rows: list[dict[str, Any]]) -> None:
        me = _Waiter(rows)
        with self.lock:
            lead = not self.busy
            if lead:
                self.busy = True
            else:
                self.queue.append(me)
        if not lead:
            me.lock.acquire()
            if me.written:
                return
        with self.lock:
            group, self.queue = [me, *self.queue], []
        _insert([row for waiter in group for row in waiter.rows])
        with self.lock:
            for waiter in group[1:]:
                waiter.written = True
                waiter.lock.release()
            if self.queue:
                self.queue.pop(0).lock.release()  # not written: it leads the next write
            else:
                self.busy = False


_GROUP = _Group() if os.environ.get("BARE_GROUP_COMMIT") == "1" else None


@app.post("/api/events")
def events():
    body = json.loads(request.get_data())
    rows = [row(event) for event in (body if isinstance(body, list) else [body])]
    if _GROUP is not None and len(rows) == 1:
        _GROUP.write(rows)
    else:
        _insert(rows)
    return "", 204
