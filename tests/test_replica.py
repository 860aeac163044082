"""The read replica (DATABASE_REPLICA_URL), on real PostgreSQL: the "replica" is the same
database reached as a role that may only SELECT and whose transactions are read-only, so any
write sent to it fails loudly. Every dashboard, live, explorer and export request must answer
from it, with and without segment filters; every write of the whole test (login, ingest,
rejected payloads, the rollup refresher) must go to the primary."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from analytics import create_app, replica
from analytics.extensions import db
from analytics.goals import create_funnel
from analytics.models import Category, Event, EventError, RollupQueue, Site
from analytics.views.dashboard import NEEDS_EVENT, NEEDS_FUNNEL, TABLES
from tests.accounts import login, make_user
from tests.conftest import _truncate, count
from tests.test_country import FR_V4
from tests.test_ingest_native import CHROME

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|TRUNCATE)\b", re.I)
SEGMENTS = [
    {},
    {"referrer": "search.example"},
    {"country": "FR"},
    {"country": "!FR", "path": "/pricing"},
    {"browser": "Chrome", "prop.plan": "pro"},
]


@pytest.fixture(scope="module")
def reader_url(postgres_url: str) -> Iterator[str]:
    """The test database as a new role with USAGE on the schema and SELECT on its tables only,
    read-only by default: a stand-in for a hot standby."""
    role = f"replica_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(
            sa.text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}")
        )
        conn.execute(sa.text(f"ALTER ROLE {role} SET default_transaction_read_only = on"))
    yield sa.engine.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
            {"r": role},
        )
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    admin.dispose()


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only (a replica of SQLite means nothing), emptied for each test."""
    _truncate(postgres_url)
    return postgres_url


@pytest.fixture
def app_config(reader_url: str) -> dict[str, str]:
    return {"DATABASE_REPLICA_URL": reader_url}


class Traffic:
    """Every statement and pool checkout of the primary and the replica engine."""

    def __init__(self, engines: dict[str, sa.Engine]) -> None:
        self.engines = engines
        self.statements: list[tuple[str, str]] = []
        self.checkouts: list[str] = []
        self._listeners = []
        for name, engine in engines.items():
            self._listen(engine, "before_cursor_execute", self._statement(name))
            self._listen(engine, "checkout", self._checkout(name))

    def _listen(self, engine: sa.Engine, name: str, fn) -> None:
        sa.event.listen(engine, name, fn)
        self._listeners.append((engine, name, fn))

    def _statement(self, name: str):
        def record(conn, cursor, statement, parameters, context, executemany):
            self.statements.append((name, statement))

        return record

    def _checkout(self, name: str):
        def record(dbapi_connection, connection_record, connection_proxy):
            self.checkouts.append(name)

        return record

    def on(self, name: str, since: int = 0) -> list[str]:
        return [sql for engine, sql in self.statements[since:] if engine == name]

    def writes(self, name: str) -> list[str]:
        return [sql for sql in self.on(name) if WRITE.match(sql)]

    def close(self) -> None:
        for engine, name, fn in self._listeners:
            sa.event.remove(engine, name, fn)


@pytest.fixture
def traffic(app: Flask) -> Iterator[Traffic]:
    recorder = Traffic({"primary": db.engine, "replica": db.engines[replica.BIND]})
    yield recorder
    recorder.close()
    db.session.remove()
    db.engines[replica.BIND].dispose()


def post_event(client, site, name="pageview", days_ago=0, **fields):
    ts = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago, minutes=5)
    body = {"site": site.public_id, "name": name, "ts": int(ts.timestamp() * 1000), **fields}
    return client.post(
        "/api/events",
        data=json.dumps(body),
        headers={"User-Agent": CHROME},
        content_type="text/plain",
        environ_base={"REMOTE_ADDR": FR_V4},
    )


def seed(client, site) -> None:
    """A few days of visits through the ingest endpoint: page views from a search engine and
    direct, a custom event with a property, a list's impressions and a click."""
    for day in range(4):
        session = f"s{day}"
        referrer = "https://search.example/q" if day % 2 else None
        for path in ("/", "/pricing"):
            extra = {"referrer": referrer} if referrer else {}
            res = post_event(
                client, site, days_ago=day, session=session, url=f"https://ex.org{path}", **extra
            )
            assert res.status_code == 202, res.get_data(as_text=True)
        res = post_event(
            client,
            site,
            "signup",
            days_ago=day,
            session=session,
            url="https://ex.org/pricing",
            props={"plan": "pro"},
        )
        assert res.status_code == 202
        for position in (1, 2, 3):
            item = {"id": f"item-{position}", "position": position, "list_size": 3}
            res = post_event(
                client,
                site,
                "impression",
                days_ago=day,
                session=session,
                item=item,
                category="results",
            )
            assert res.status_code == 202
        click = {"id": "item-2", "position": 2, "list_size": 3}
        assert (
            post_event(
                client,
                site,
                "item_click",
                days_ago=day,
                session=session,
                item=click,
                category="results",
            ).status_code
            == 202
        )


def read_paths(site) -> list[str]:
    """Every dashboard page, chart CSV, live view, explorer page and raw export."""
    paths = ["/overview", "/actions", "/actions/signup", "/lists", "/live", "/live.json"]
    paths += ["/events", "/errors", "/export/events.csv", "/export/errors.csv"]
    for table in TABLES:
        if table in NEEDS_FUNNEL:
            funnel = create_funnel(site, "Home to pricing", ["path:/", "path:/pricing"])
            db.session.refresh(site)  # the commit expired it; the test reads it detached later
            paths += [f"/csv/{table}.csv?funnel={funnel.id}", "/funnels", f"/funnels/{funnel.id}"]
        else:
            paths.append(f"/csv/{table}.csv" + ("?event=signup" if table in NEEDS_EVENT else ""))
    return paths


def test_reads_go_to_the_replica_and_every_write_to_the_primary(app, client, site, runner, traffic):
    make_user()
    login(client)
    assert traffic.writes("primary"), "the login notes its time on the primary"
    checkouts = len(traffic.checkouts)
    seed(client, site)
    # Ingest writes on raw pooled connections of the primary (no statement event fires there).
    assert set(traffic.checkouts[checkouts:]) == {"primary"}
    rejected = client.post("/api/events", data="{not json", content_type="text/plain")
    assert rejected.status_code == 400
    assert count(EventError) == 1 and count(Event) == 4 * 7

    # The refresher builds the stored days on the primary (it is never in a request).
    before = len(traffic.statements)
    result = runner.invoke(args=["rollups", "refresh"])
    assert result.exit_code == 0, result.output
    assert count(RollupQueue) == 0
    assert traffic.on("primary", before) and not traffic.on("replica", before)
    # One more event after the refresh: a queued day the dashboards read raw.
    assert post_event(client, site, session="late", url="https://ex.org/late").status_code == 202

    for path in read_paths(site):
        for segment in SEGMENTS:
            db.session.close()  # the test's app context outlives requests: start each clean
            before, checkouts = len(traffic.statements), len(traffic.checkouts)
            sep = "&" if "?" in path else "?"
            query = "&".join(f"{k}={v}" for k, v in {"site": site.public_id, **segment}.items())
            res = client.get(f"{path}{sep}{query}&period=7d")
            body = res.get_data()  # a streamed export runs its query now
            assert res.status_code == 200, (path, segment, body[:300])
            assert traffic.on("replica", before), (path, segment)
            # Nothing of it reached the primary: no statement, and no connection either (a raw
            # export's COPY runs on a connection of its own, where no statement event fires).
            assert not traffic.on("primary", before), (path, segment, traffic.on("primary", before))
            assert "primary" not in traffic.checkouts[checkouts:], (path, segment)
            if path == "/export/events.csv" and not segment:
                assert body.count(b"\r\n") == 1 + 4 * 7 + 1
            if path == "/overview" and segment.get("country") == "FR":
                assert b"/pricing" in body  # the segment matched: FR visits are shown

    assert not traffic.writes("replica"), traffic.writes("replica")
    assert not any("segment_events_" in sql for _, sql in traffic.statements)
    primary = " ".join(traffic.writes("primary"))
    for table in ("event_errors", "users", "rollup_facts", "rollup_queue"):
        assert re.search(rf"\b(INSERT INTO|UPDATE|DELETE FROM) {table}\b", primary), table


def test_a_write_inside_a_replica_request_goes_to_the_primary(app, site, traffic):
    with app.test_request_context(f"/overview?site={site.public_id}"):
        assert replica.in_use()
        assert db.session.get_bind() is db.engines[replica.BIND]
        db.session.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one()
        db.session.add(Category(name="flushed"))
        db.session.commit()  # the flush: to the primary (the replica's role would refuse it)
        db.session.execute(sa.delete(Category).where(Category.name == "flushed"))
        db.session.commit()
    assert count(Category) == 0
    assert traffic.on("replica") and not traffic.writes("replica")
    assert any(sql.startswith("INSERT INTO categories") for sql in traffic.writes("primary"))
    assert any(sql.startswith("DELETE FROM categories") for sql in traffic.writes("primary"))
    with app.test_request_context("/login"):
        assert not replica.in_use() and db.session.get_bind() is db.engine


def test_without_a_replica_everything_stays_on_one_engine(postgres_url):
    _truncate(postgres_url)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "WTF_CSRF_ENABLED": False,
            "SQLALCHEMY_DATABASE_URI": postgres_url,
            "DATABASE_REPLICA_URL": "",
        }
    )
    with app.app_context():
        assert list(db.engines) == [None]
        assert "SQLALCHEMY_BINDS" not in app.config or not app.config["SQLALCHEMY_BINDS"]
        client = app.test_client()
        site = make_site_row()
        seed(client, site)
        make_user()
        login(client)
        traffic = Traffic({"primary": db.engine})
        try:
            query = "period=7d&goal=Signup"
            res = client.get(f"/overview?site={site.public_id}&{query}")
            assert res.status_code == 200
            assert not replica.in_use()
            # On PostgreSQL without a replica, a segmented page copies its events once (a goal
            # filter: stored visits answer the visit- and event-level filters without one).
            assert any("segment_events_" in sql for sql in traffic.writes("primary"))
        finally:
            traffic.close()
            db.session.remove()
            db.engine.dispose()


def make_site_row() -> Site:
    site = Site(name="Solo", public_id=uuid.uuid4().hex[:12], origins=[])
    db.session.add(site)
    db.session.commit()
    return site
