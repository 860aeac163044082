"""Citus-ready: every statement would route to one shard, and every key includes `site_id`.

The checker (tests/routing.py) is tested here on statements written to pass and to fail; the
hook in conftest.py applies it to what every PostgreSQL test's requests send.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask, Response

from analytics.extensions import db
from analytics.ingest.writer import event_row, store_events
from analytics.models import utcnow
from analytics.rollups.refresh import refresh

from . import routing

ROUTED = [
    "SELECT count(*) FROM events WHERE site_id = %(site_id_1)s::INTEGER AND occurred_at >= %(t)s",
    "SELECT count(*) FROM events AS e WHERE e.site_id = 3",
    "SELECT count(*) FROM events WHERE site_id IN (%(a)s, %(b)s)",
    "SELECT count(*) FROM events WHERE site_id = ANY(%(ids)s)",
    "SELECT count(*) FROM events AS e WHERE (e.site_id, e.name) IN ((1, 'a'), (1, 'b'))",
    "SELECT count(*) FROM events WHERE name LIKE 'a%%' AND site_id = %s",
    # joined on site_id to a pinned table, either way round, or by USING
    "SELECT 1 FROM events e JOIN rollup_facts f ON f.site_id = e.site_id WHERE e.site_id = 1",
    "SELECT 1 FROM events e JOIN rollup_facts f ON e.site_id = f.site_id WHERE f.site_id = 1",
    "SELECT 1 FROM events e JOIN rollup_facts f USING (site_id) WHERE e.site_id = 1",
    "SELECT 1 FROM events e LEFT JOIN rollup_presence p ON p.site_id = e.site_id "
    "WHERE e.site_id = 1",
    # reference tables need nothing
    "SELECT 1 FROM events e JOIN sites s ON s.id = e.site_id WHERE e.site_id = 1",
    "SELECT id, name FROM sites WHERE public_id = %(p)s",
    # CTEs, derived tables and subqueries, each pinned, or correlated to a pinned table
    "WITH d AS (SELECT site_id, name FROM events WHERE site_id = 1) SELECT count(*) FROM d",
    "SELECT count(*) FROM (SELECT name FROM rollup_span_events WHERE site_id = 1) AS ev",
    "SELECT * FROM events e WHERE e.site_id = 1 AND EXISTS "
    "(SELECT 1 FROM rollup_presence p WHERE p.site_id = e.site_id AND p.key = e.visitor_id)",
    "SELECT * FROM events WHERE site_id = 1 AND path IN "
    "(SELECT path FROM rollup_span_events WHERE site_id = 1)",
    "SELECT 1 FROM events WHERE site_id = 1 UNION ALL SELECT 1 FROM rollup_span_events "
    "WHERE site_id = 1",
    # writes
    "INSERT INTO events (site_id, occurred_at, id, name) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id",
    "INSERT INTO events (site_id, occurred_at, id) SELECT site_id, occurred_at, id "
    "FROM json_populate_recordset(NULL::events, %s::json) ON CONFLICT DO NOTHING RETURNING id",
    "INSERT INTO rollup_queue (site_id, day) SELECT * FROM unnest(%(s)s::int[], %(d)s::date[])",
    "INSERT INTO rollup_span_events (site_id, day, name) "
    "SELECT site_id, %(day)s, name FROM events WHERE site_id = %(site_id)s",
    "UPDATE rollup_presence SET spans = true WHERE site_id = %(s)s AND kind = 'u'",
    "DELETE FROM rollup_facts WHERE rollup_facts.site_id = %(s)s AND day = %(d)s",
    "DELETE FROM rollup_queue WHERE site_id = %(s)s AND id IN "
    "(SELECT id FROM rollup_queue AS q WHERE q.site_id = rollup_queue.site_id)",
    "CREATE TEMPORARY TABLE t AS SELECT site_id, name FROM events WHERE site_id = 4 WITH NO DATA",
    # marked as multi-site by design
    "SELECT /* all sites: the refresher claims every queued day */ site_id, day FROM rollup_queue",
]

UNROUTED = {
    "SELECT count(*) FROM events WHERE occurred_at >= %(t)s": "events has no site_id",
    "SELECT count(*) FROM events WHERE site_id = 1 OR site_id = 2": "events has no site_id",
    "SELECT count(*) FROM events WHERE site_id > 1": "events has no site_id",
    "SELECT count(*) FROM events WHERE site_id IN (SELECT id FROM sites)": "events has no",
    "SELECT count(*) FROM events e JOIN sites s ON s.id = e.site_id WHERE s.id = 1": "AS e has no",
    "SELECT count(*) FROM events e, rollup_facts f WHERE e.site_id = 1 AND f.site_id = 2": (
        "e and f are not joined on site_id"
    ),
    "SELECT 1 FROM events e JOIN rollup_facts f ON f.day = e.day AND f.site_id = 1 "
    "WHERE e.site_id = 1": "e and f are not joined on site_id",
    "SELECT 1 FROM events e LEFT JOIN rollup_facts f ON f.site_id = 1 WHERE e.site_id = 1": (
        "e and f are not joined on site_id"
    ),
    # the nullable side's condition does not filter the other side
    "SELECT 1 FROM events e LEFT JOIN rollup_facts f ON f.site_id = e.site_id AND f.site_id = 1": (
        "events AS e has no site_id"
    ),
    "SELECT 1 FROM events e JOIN rollup_facts f ON f.site_id = e.site_id": "events AS e has no",
    "WITH d AS (SELECT name FROM events) SELECT count(*) FROM d": "events has no site_id",
    "SELECT count(*) FROM (SELECT name FROM rollup_span_events) AS ev": "rollup_span_events has",
    "SELECT * FROM events e WHERE e.site_id = 1 AND EXISTS "
    "(SELECT 1 FROM rollup_presence p WHERE p.key = e.visitor_id)": "rollup_presence AS p has no",
    "SELECT 1 FROM events WHERE site_id = 1 UNION ALL SELECT 1 FROM rollup_span_events": (
        "rollup_span_events has no site_id"
    ),
    "INSERT INTO events (occurred_at, id, name) VALUES (%s, %s, %s)": "does not set site_id",
    "INSERT INTO rollup_facts (site_id, metric) SELECT site_id, 'x' FROM events": "events has no",
    "UPDATE rollup_presence SET spans = true WHERE kind = 'u'": "rollup_presence has no site_id",
    "DELETE FROM rollup_facts WHERE day = %(d)s": "rollup_facts has no site_id",
    "DELETE FROM rollup_queue WHERE id IN (SELECT id FROM rollup_queue WHERE site_id = 1)": (
        "rollup_queue has no site_id"
    ),
    "CREATE TEMPORARY TABLE t AS SELECT site_id FROM events WITH NO DATA": "events has no",
    # a comment that is not the marker exempts nothing
    "SELECT /* every site */ site_id, day FROM rollup_queue": "rollup_queue has no site_id",
}


@pytest.mark.parametrize("sql", ROUTED)
def test_statements_pinned_to_one_site_route_to_one_shard(sql):
    assert routing.problems(sql) == ()


@pytest.mark.parametrize("sql, why", UNROUTED.items())
def test_statements_not_pinned_are_named_with_why(sql, why):
    found = routing.problems(sql)
    assert found and any(why in problem for problem in found), found


def test_exemptions_say_why():
    sql = "DELETE /* all sites: retention runs over every site */ FROM events WHERE day < 1"
    assert routing.exemption(sql) == "retention runs over every site"
    assert routing.exemption("SELECT 1 FROM events") is None


def test_the_hook_sees_requests_streamed_bodies_and_raw_cursors(postgres_url):
    """What the conftest hook relies on: statements a request sends (during its handler and
    while its body streams, through SQLAlchemy or a raw psycopg cursor) are recorded, and the
    test's own are not."""
    app = Flask(__name__)
    engine = sa.create_engine(postgres_url)

    @app.get("/")
    def page() -> Response:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM events WHERE occurred_at > now()"))

        def body():
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT count(*) FROM rollup_facts"))
            raw = engine.raw_connection()
            try:
                with raw.driver_connection.cursor() as cur:
                    cur.execute(
                        "SELECT count(*) FROM rollup_queue WHERE day > %s", (dt.date.today(),)
                    )
            finally:
                raw.close()
            yield "done"

        return Response(body())

    try:
        with routing.recorder(requests=True) as sent:
            assert app.test_client().get("/").data == b"done"
            with engine.connect() as conn:  # the test's own query
                conn.execute(sa.text("SELECT count(*) FROM rollup_presence"))
    finally:
        engine.dispose()
    tables = {reason.split()[0] for _sql, why in routing.unroutable(sent) for reason in why}
    assert tables == {"events", "rollup_facts", "rollup_queue"}


# --- keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "table",
    [
        "events",
        "rollup_presence",
        "rollup_span_events",
        "rollup_facts",
        "rollup_queue",
    ],
)
def test_every_primary_and_unique_key_includes_site_id(postgres_url, table):
    """Citus distributes by site_id, and only enforces a key that includes it."""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            keys = conn.execute(
                sa.text(
                    "SELECT i.relname, array(SELECT a.attname FROM unnest(x.indkey) AS k "
                    "  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k) "
                    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "WHERE x.indrelid = to_regclass(:table) AND (x.indisprimary OR x.indisunique)"
                ),
                {"table": table},
            ).all()
    finally:
        engine.dispose()
    assert keys, f"{table} has no primary key"
    assert [(name, columns) for name, columns in keys if "site_id" not in columns] == []


# --- the rollup refresher ---------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_rollup_refresher_routes_each_day_to_its_site(app, make_site):
    """The refresher is no request, but it is the heaviest user of the distributed tables: every
    statement it sends is pinned to the site whose day it recomputes, or marked all-sites. Two
    rounds: days built from scratch, then from the rows added since (delta.py)."""
    sites = [make_site("One"), make_site("Two")]
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)

    def rows(batch: int) -> list[dict]:
        return [
            event_row(
                site_id=site.id,
                occurred_at=start + dt.timedelta(days=day, minutes=n, seconds=batch),
                name="pageview",
                path=f"/{n}",
                session_id=f"s{n}",
                visitor_id=f"v{n % 3}",  # visitors seen on several days: span events
                source="tracker",
            )
            for site in sites
            for day in range(3)
            for n in range(4)
        ]

    with routing.recorder() as sent:
        store_events(rows(0))
        with routing.watched(sent):
            assert refresh() == 6
        store_events(rows(1))
        with routing.watched(sent):
            assert refresh() == 6
    db.session.remove()
    found = routing.unroutable(sent)
    assert not found, routing.report(found, "by the rollup refresher")
