"""Fixtures: an app per test on a fresh database, parametrized over SQLite and PostgreSQL.

PostgreSQL tests use the server named by TEST_POSTGRES_URL (an admin URL; a database of their own
is created for the test session and dropped after). Without it they skip with the reason, unless
REQUIRE_POSTGRES=1 (as in CI), where they fail instead. Browser tests likewise need Debian's
Chromium and skip without it unless REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from analytics import create_app
from analytics.extensions import db
from analytics.models import Site

from . import routing

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# The server drops bot user agents, and headless Chromium names itself HeadlessChrome. A context's
# user_agent does not reach beacons sent while a page unloads, so the browser itself gets this one.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def _required(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _migrated(url: str) -> None:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    _migrated(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = os.environ.get("TEST_POSTGRES_URL")
    if not admin:
        if _required("REQUIRE_POSTGRES"):
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_POSTGRES_URL (make test starts a server)")
    from analytics.config import normalise_database_url

    admin = normalise_database_url(admin)
    name = f"analytics_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if _required("REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable at TEST_POSTGRES_URL: {exc}")
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    _migrated(url)
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _truncate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [t.name for t in db.metadata.sorted_tables]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture(autouse=True)
def citus_routing(request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL, fail a test whose requests sent a statement that would not route to one
    Citus shard (tests/routing.py); the test's own queries are not checked."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("database_url") != "postgresql":
        yield
        return
    with routing.recorder(requests=True) as sent:
        yield
    if found := routing.unroutable(sent):
        pytest.fail(routing.report(found, "while serving requests"), pytrace=False)


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    """Override in a test module to change settings for its tests."""
    return {}


@pytest.fixture
def app(database_url: str, app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": False,
            **app_config,
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def make_site(app: Flask):
    """Factory: a committed site with the given origins."""

    def make(
        name: str = "Example", origins: list[str] | None = None, public_id: str | None = None
    ) -> Site:
        site = Site(name=name, public_id=public_id or uuid.uuid4().hex[:12], origins=origins or [])
        db.session.add(site)
        db.session.commit()
        return site

    return make


@pytest.fixture
def site(make_site) -> Site:
    return make_site()


def count(model_or_table) -> int:
    """Rows in a table, read through a fresh connection (what another process would see)."""
    table = getattr(model_or_table, "__table__", model_or_table)
    with db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


@contextlib.contextmanager
def served_in_thread(wsgi_app: Any) -> Iterator[str]:
    """A WSGI app served over real HTTP on loopback in a background thread: its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on loopback in a background thread; yields its base URL."""
    with served_in_thread(app) as base:
        yield base


def every_cell() -> list[tuple[str, str, str]]:
    """(table, column, value as JSON text) for every non-null cell of every table: what a test
    searches for data that must not be stored."""
    cells = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        cells.append((table.name, column, json.dumps(value, default=str)))
    return cells


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium driven by Playwright (no browser download, ever)."""
    if not os.path.exists(CHROMIUM):
        if _required("REQUIRE_BROWSER"):
            pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-agent={DESKTOP_CHROME}",
            ],
        )
        yield browser
        browser.close()
