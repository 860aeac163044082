"""The floor of a durable ingest: a minimal Flask app that parses the JSON body (one event or a
list), INSERTs its rows into `events` with plain psycopg, commits synchronously, answers 204.

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

from analytics.ingest.writer import _SQL, _postgres_params, event_row
from bench.database import libpq_url

SQL = _SQL["postgresql"]  # the positional INSERT of bench/ingest.py's bare executemany
URL = libpq_url(os.environ["DATABASE_URL"])
SITE_ID = int(os.environ["BENCH_SITE_ID"])

app = Flask(__name__)
# One connection per gunicorn thread: a pool as small as can be, and no wait for a connection.
_local = threading.local()


def row(event: dict[str, Any]) -> tuple[Any, ...]:
    """The INSERT's parameters for one event: the fields it sends as they are, the rest
    defaulted as the app's writer does."""
    fields = event_row(
        site_id=SITE_ID,
        source="bare",
        name=event.get("name"),
        session_id=event.get("session"),
        referrer=event.get("referrer"),
    )
    return _postgres_params(fields)


def _connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:  # first use, or lost: the request that found it got a 500
        conn = _local.conn = psycopg.connect(URL, autocommit=True)
    return conn


@app.post("/api/events")
def events():
    body = json.loads(request.get_data())
    params = [row(event) for event in (body if isinstance(body, list) else [body])]
    conn = _connection()
    if len(params) == 1:  # autocommit: its own transaction, committed before execute returns
        conn.execute(SQL, params[0])
    else:
        with conn.transaction(), conn.cursor() as cur:  # COMMIT at the block's end
            cur.executemany(SQL, params)
    return "", 204
