"""The floor of a durable ingest: a bare WSGI app (no Flask, no framework) that reads the body,
parses the JSON (one event or a list), INSERTs its rows into `events` with plain psycopg,
commits synchronously and answers 204.

Nothing else: no validation, no visitor hash, no user-agent parse, no rollups (unless
BARE_ROLLUPS, below), no asynchronous commit. Every ingest that answers 2xx only once its events
are committed does all of this and more, so in the same gunicorn configuration none can run
faster than this app by more than the noise; one that keeps the rollups at ingest, as ours does,
none faster than this app with BARE_ROLLUPS. A ratio target that this app misses with the
refresher is out of reach on this machine, and so is a p99 target it misses at 80 % of its own
maximum rate (bench/suites/ingest.py).

One event is one INSERT; a list is one statement over the rows as a JSON array, the faster of
the two bare batch forms the suite measures (about 1.6x `executemany`: 50 statements, and 50
firings of the rollup trigger). Configured by the environment gunicorn is started with:
DATABASE_URL (the app's), BENCH_SITE_ID (the site the rows belong to); BARE_GROUP_COMMIT=1, with
which the requests of a process that arrive while a write is in flight share the next one (our
app's grouping at its barest: one statement per group, prepared as ours); BARE_NO_INSERT=1, with
which it only parses: what the HTTP handling costs in gunicorn without Flask; BARE_ROLLUPS=1,
with which each worker also runs our rollup refresher process, as each of our app's workers does
(the issue puts the rollups on the measured path when they are kept at ingest), and its rows
carry a visitor (the event's session, as is: one per request, as ours get one per request from
X-Forwarded-For) and a path (the URL, as is), so that the refresher counts visits and pages as
it does ours. Its other dimensions are left empty: a floor may do less than ours, never more;
BARE_CHECKS=1, with which each event also passes the checks that every event this product stores
must pass, done by the app's own functions and nothing around them: validated against `POST
/api/events`'s schema (the same time limits), its site matched (looked up once per worker) and
the Origin checked against the site's list, the visitor hashed (`visitor.visitor_hash`, under a
key made at start), the user agent parsed (cached) and the address's country looked up; its row
holds what ours holds. An event that fails them is a 400, and nothing is recorded. What our app
does beyond this floor: its JSON answer, the error table, the rate limit, the Flask app context,
the dispatch. BARE_CHECKS=benefits, collector or track does the same for `POST /benefits`,
`/collector` or `/track` (the path it then serves) with that contract's own functions: its
model, its row (`record_row`, `event_from`, `track_row`: the collector's dedupe key, the user
agent parsed) and the country looked up; the visitor hashed (the recorder's records name
theirs); for the recorder its content type, for the collector its allowed hosts (the default,
any) and its category (the known ones read once per worker). A body that fails them is a 400.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from analytics.ingest.country import lookup
from analytics.ingest.legacy import benefits, collector, track
from analytics.ingest.native import event_fields
from analytics.ingest.request import forwarded_for
from analytics.ingest.schema import EventIn
from analytics.ingest.sites import SiteRef
from analytics.ingest.useragent import parse_agent
from analytics.ingest.visitor import visitor_hash
from analytics.ingest.writer import (
    _SQL,
    PREPARED,
    PREPARED_SQL,
    ROWS_SQL,
    _execute_prepared,
    _postgres_params,
    event_row,
    rows_json,
)
from analytics.models import utcnow
from analytics.rollups.process import HOLDER_ENV, PARENT_ENV
from bench.database import libpq_url

SQL = _SQL["postgresql"]  # the positional INSERT of bench/ingest.py's bare executemany
URL = libpq_url(os.environ["DATABASE_URL"])
SITE_ID = int(os.environ.get("BENCH_SITE_ID", 0))  # unset when it only parses
INSERT = os.environ.get("BARE_NO_INSERT") != "1"
ROLLUPS = os.environ.get("BARE_ROLLUPS") == "1"
CHECKS = os.environ.get("BARE_CHECKS") or None  # "1": /api/events' checks; or a contract's
LEGACY = {"benefits": "/benefits", "collector": "/collector", "track": "/track"}
PATH = LEGACY.get(CHECKS or "", "/api/events")

# One connection per gunicorn thread: a pool as small as can be, and no wait for a connection.
_local = threading.local()


def row(event: dict[str, Any]) -> dict[str, Any]:
    """One event's row: the fields it sends as they are, the rest defaulted as the app's writer
    does."""
    fields = {"visitor_id": event.get("session"), "path": event.get("url")} if ROLLUPS else {}
    return event_row(
        site_id=SITE_ID,
        source="bare",
        name=event.get("name"),
        session_id=event.get("session"),
        referrer=event.get("referrer"),
        **fields,
    )


def _site() -> SiteRef:
    """BENCH_SITE_ID's site, read once: the app caches it too (ingest/sites.py)."""
    with psycopg.connect(URL) as conn:
        public_id, origins = conn.execute(
            "SELECT public_id, origins FROM sites WHERE id = %s", (SITE_ID,)
        ).fetchone()
    if isinstance(origins, str):  # a JSON column read as text
        origins = json.loads(origins)
    return SiteRef(SITE_ID, public_id, tuple(o.rstrip("/") for o in origins or ()))


SITE = _site() if CHECKS == "1" else None
VISITOR_KEY = secrets.token_bytes(32)  # the day's salt of visitor.py, made once here
MAX_AGE = dt.timedelta(days=7)  # MAX_EVENT_AGE_DAYS's and MAX_EVENT_FUTURE_SECONDS's defaults
MAX_FUTURE = dt.timedelta(seconds=300)


def checked_row(item: Any, environ: dict[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    """One event's row after the checks every stored event passes (BARE_CHECKS), or None when
    it fails one."""
    try:
        event = EventIn.model_validate(
            item, context={"now": now, "max_age": MAX_AGE, "max_future": MAX_FUTURE}
        )
    except ValueError:  # pydantic's ValidationError is one
        return None
    if event.site != SITE.public_id or not SITE.allows_origin(environ.get("HTTP_ORIGIN")):
        return None
    ip = forwarded_for(environ, 1)  # behind one proxy: PROXY_COUNT=1, as our app in the suite
    agent = environ.get("HTTP_USER_AGENT")
    parsed = parse_agent(agent)
    return event_row(
        site_id=SITE_ID,
        source="bare",
        occurred_at=event.ts or now,
        received_at=now,
        visitor_id=visitor_hash(VISITOR_KEY, SITE_ID, ip, agent),
        browser=parsed.browser,
        os=parsed.os,
        device=parsed.device,
        country=lookup(ip) if ip else None,
        **event_fields(event),
    )


def _categories() -> frozenset[str]:
    """The collector's known categories, read once (ours caches each found one for 30 s)."""
    with psycopg.connect(URL) as conn:
        return frozenset(name for (name,) in conn.execute("SELECT name FROM categories"))


CATEGORIES = _categories() if CHECKS == "collector" else frozenset()


def checked_collector_row(
    data: Any, environ: dict[str, Any], now: dt.datetime
) -> dict[str, Any] | None:
    """A `POST /collector` body's row after that contract's checks (BARE_CHECKS=collector), or
    None when it fails one (ours then keeps it in the error table, and still answers 200)."""
    ip, agent = forwarded_for(environ, 1), environ.get("HTTP_USER_AGENT")
    caller = collector.Caller(origin=environ.get("HTTP_ORIGIN"), host=environ.get("HTTP_HOST"))
    if not isinstance(data, dict) or not collector.allowed(["*"], caller):
        return None
    try:
        event = collector.CollectorEvent.model_validate(data)
    except ValueError:
        return None
    row = collector.event_from(
        event,
        SITE_ID,
        source="bare",
        received_at=now,
        visitor=visitor_hash(VISITOR_KEY, SITE_ID, ip, agent),
        country=lookup(ip) if ip else None,
    )
    return row if row["category"] in CATEGORIES else None


def checked_track_row(
    data: Any, environ: dict[str, Any], now: dt.datetime
) -> dict[str, Any] | None:
    """A `POST /track` body's row after that contract's checks (BARE_CHECKS=track), or None."""
    ip, agent = forwarded_for(environ, 1), environ.get("HTTP_USER_AGENT")
    try:
        payload = track.TrackIn.model_validate(data, context={"now": now, "max_future": MAX_FUTURE})
    except ValueError:
        return None
    return track.track_row(
        payload,
        SITE_ID,
        user_agent=agent,
        received_at=now,
        visitor=visitor_hash(VISITOR_KEY, SITE_ID, ip, agent),
        source="bare",
        country=lookup(ip) if ip else None,
    )


def checked_benefits_rows(
    data: Any, environ: dict[str, Any], now: dt.datetime
) -> list[dict[str, Any]] | None:
    """A `POST /benefits` body's rows (a record or a batch, all or none) after that contract's
    checks (BARE_CHECKS=benefits), or None when one fails."""
    if not benefits._is_json(environ.get("CONTENT_TYPE")):
        return None
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        return None
    try:
        records = [benefits.BenefitRecord.model_validate(item) for item in items]
    except ValueError:
        return None
    ip = forwarded_for(environ, 1)
    group_id, country = uuid.uuid4().hex, lookup(ip) if ip else None
    return [
        benefits.record_row(r, SITE_ID, group_id, created_at=now, source="bare", country=country)
        for r in records
    ]


ONE_ROW = {"collector": checked_collector_row, "track": checked_track_row}  # a body, one row


def checked_rows(
    body: Any, environ: dict[str, Any], now: dt.datetime
) -> list[dict[str, Any]] | None:
    """The body's rows after its contract's checks (BARE_CHECKS), or None when one fails: a
    tracker event or a list of them; a legacy contract's body (the recorder's may be a batch)."""
    if CHECKS == "benefits":
        return checked_benefits_rows(body, environ, now)
    if CHECKS in ONE_ROW:
        found = ONE_ROW[CHECKS](body, environ, now)
        return None if found is None else [found]
    items = body if isinstance(body, list) else [body]
    rows = [found for item in items if (found := checked_row(item, environ, now)) is not None]
    return rows if len(rows) == len(items) else None


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
        self.conn: psycopg.Connection | None = None  # the leader's of the moment

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """A group's one statement as ours writes it (`GroupWriter`): the JSON form, prepared
        once on a connection of its own and run through libpq. (Until 2026-12-05 the floor sent
        a lone row as VALUES and a group as JSON through psycopg's cursor, which cost more per
        statement than ours: at 32 connections ours outran it on `/collector` and `/track`.)"""
        conn = self.conn
        if conn is None or conn.closed:
            conn = self.conn = psycopg.connect(URL, autocommit=True)
            conn.pgconn.prepare(PREPARED, PREPARED_SQL)
        _execute_prepared(conn, rows)

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
        self._insert([row for waiter in group for row in waiter.rows])
        with self.lock:
            # the next leader first, as our GroupWriter does: first in line for the GIL
            if self.queue:
                self.queue.pop(0).lock.release()  # not written: it leads the next write
            else:
                self.busy = False
            for waiter in group[1:]:
                waiter.written = True
                waiter.lock.release()


_GROUP = _Group() if os.environ.get("BARE_GROUP_COMMIT") == "1" else None


def _start_refresher() -> subprocess.Popen:
    """Our refresher process, a child of this worker as under our app (background.py starts it
    so, at the first request): the same rounds over the same queue, every ROLLUP_INTERVAL
    seconds, one lease for all; it ends with this worker."""
    env = os.environ | {PARENT_ENV: str(os.getpid()), HOLDER_ENV: f"bench-floor:{os.getpid()}"}
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.rollups.process"], env=env | {"DEMO": "0"},
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


# gunicorn imports this module in each worker (it does not preload): one refresher per worker.
_REFRESHER = _start_refresher() if ROLLUPS else None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """POST /api/events (or the contract's path: BARE_CHECKS); GET /healthz
    (`bench.freshness.settle` asks it before a run) is a 200; anything else (the bench's start-up
    probe) is a 404."""
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != PATH:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    if INSERT:
        if CHECKS:
            rows = checked_rows(body, environ, utcnow())
            if rows is None:
                start_response("400 Bad Request", [("Content-Length", "0")])
                return []
        else:
            rows = [row(event) for event in (body if isinstance(body, list) else [body])]
        if _GROUP is not None and len(rows) == 1:
            _GROUP.write(rows)
        elif rows:  # none: an empty recorder batch, stored as nothing (as ours)
            _insert(rows)
    start_response("204 No Content", [])  # no body, so no length
    return []
