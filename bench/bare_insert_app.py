"""The floor of a durable ingest: a minimal Flask app that parses the JSON body (one event or a
list), INSERTs its rows into `events` with plain psycopg, commits synchronously, answers 204.
One event is one INSERT; a list is one statement over the rows as a JSON array, the faster of
the two bare batch forms the suite measures (about 1.6x `executemany`: 50 statements, and 50
firings of the rollup trigger).

Nothing else: no validation, no visitor hash, no user-agent parse, no grouping of requests, no
asynchronous commit. Its p99 at 80 % of its own maximum rate is the least this machine can do
for the app's (bench/ingest.py). Configured by the environment gunicorn is started with:
DATABASE_URL (the app's) and BENCH_SITE_ID (the site the rows belong to).
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


@app.post("/api/events")
def events():
    body = json.loads(request.get_data())
    rows = [row(event) for event in (body if isinstance(body, list) else [body])]
    conn = _connection()
    # autocommit: each statement is its own transaction, committed before execute returns
    if len(rows) == 1:
        conn.execute(SQL, _postgres_params(rows[0]))
    else:
        conn.execute(ROWS_SQL, (rows_json(rows),)).fetchall()
    return "", 204
