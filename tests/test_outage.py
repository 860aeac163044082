"""A real PostgreSQL outage: the server is stopped for 20 seconds under a browsing visitor and
under a stream of direct posts, then started again; the app is never restarted.

Promises checked: every event the page produced is in `events` exactly once; every 2xx answer
is stored and every other answer is a 503 or a 4xx (never a 500), and an event answered 503 was
not stored; `/healthz` answers 503 during the outage and 200 after.

The cluster is the test's own (initdb in a temporary directory, its own port), since stopping
the shared one would fail every other test. It needs Debian's `postgresql` server binaries.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from analytics import create_app
from analytics.extensions import db
from analytics.models import Event, Site

from .conftest import DESKTOP_CHROME, _migrated, _required, served_in_thread

OUTAGE_SECONDS = 20


class Cluster:
    """A throw-away PostgreSQL server that a test may stop and start."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            if _required("REQUIRE_POSTGRES"):
                pytest.fail("REQUIRE_POSTGRES=1 but the PostgreSQL server binaries are missing")
            pytest.skip("needs Debian's postgresql server binaries (apt-get install postgresql)")
        self.bin = os.path.dirname(found[-1])
        # Under /tmp itself: pytest's own temporary directories are private to this user, and
        # the server may run as `postgres` (when the tests run as root).
        self.top = tempfile.mkdtemp(prefix="analytics-outage-")
        self.dir = os.path.join(self.top, "pgdata")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = os.geteuid() == 0
        os.makedirs(self.dir)
        if self.root:
            shutil.chown(self.top, "postgres")
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", self.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bin, tool), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        log = os.path.join(self.dir, "server.log")
        self._run("pg_ctl", "-D", self.dir, "-l", log, "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.dir, "-m", mode, "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    server = Cluster()
    server.start()
    yield server
    try:
        server.stop("immediate")
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(server.top, ignore_errors=True)


@pytest.fixture
def served(cluster: Cluster) -> Iterator[tuple[Any, str]]:
    """The app on the test's cluster, over HTTP on loopback: (app, base URL)."""
    _migrated(cluster.url)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": cluster.url,
            "WTF_CSRF_ENABLED": False,
            "DEMO": True,
        }
    )
    with served_in_thread(app) as base, app.app_context():
        yield app, base
        db.engine.dispose()


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def post(url: str, body: Any) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_CHROME},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def rows_by_eid(url: str) -> Counter[str]:
    """How many `events` rows each eid has, read through a connection of our own."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(conn.execute(sa.select(Event.dedupe_key)).scalars())
    finally:
        engine.dispose()


def wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while get_status(base + "/healthz") != 200:
        assert time.monotonic() < deadline, "/healthz never came back"
        time.sleep(0.25)


def test_direct_posts_through_a_database_restart(cluster: Cluster, served) -> None:
    """Four clients post single events before, during and after a 20 s outage."""
    app, base = served
    with db.engine.begin() as conn:
        conn.execute(sa.insert(Site).values(public_id="direct", name="Direct", origins=""))
    answers: dict[str, int] = {}
    stop = threading.Event()
    health: list[int] = []

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            eid = f"c{n}.{i}"
            answers[eid] = post(base + "/api/events", {"site": "direct", "name": "hit", "eid": eid})
            i += 1
            time.sleep(0.02)

    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(client, n)
        time.sleep(2)
        assert get_status(base + "/healthz") == 200
        cluster.stop()
        down_until = time.monotonic() + OUTAGE_SECONDS
        refusal = urllib.request.Request(
            base + "/api/events",
            data=b'{"site": "direct", "name": "hit"}',
            headers={"Origin": "https://elsewhere.example", "User-Agent": DESKTOP_CHROME},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(refusal, timeout=10)
        # Readable cross-origin, so that the tracker can honour Retry-After.
        assert answer.value.code == 503
        assert answer.value.headers["Retry-After"] == "5"
        assert answer.value.headers["Access-Control-Allow-Origin"] == "*"
        assert answer.value.headers["Access-Control-Expose-Headers"] == "Retry-After"
        while time.monotonic() < down_until:
            health.append(get_status(base + "/healthz"))
            time.sleep(1)
        cluster.start()
        wait_healthy(base)
        time.sleep(3)
        stop.set()

    statuses = Counter(answers.values())
    stored = rows_by_eid(cluster.url)
    acknowledged = {eid for eid, status in answers.items() if 200 <= status < 300}
    refused = {eid for eid, status in answers.items() if status == 503}
    print(
        f"\n[outage] direct posts: {dict(statuses)}; {len(stored)} stored, "
        f"/healthz during the outage: {dict(Counter(health))}"
    )
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[503] > 0 and statuses[202] > 0
    assert acknowledged <= set(stored), "every 2xx is in the database"
    assert not refused & set(stored), "a 503 stored nothing"
    assert max(stored.values()) == 1
    assert set(health) == {503}
    assert get_status(base + "/healthz") == 200


def host_site(analytics: str) -> Iterator[str]:
    """The visitor's website: two pages on another origin, wearing the tracker of `analytics`
    (a real site does not share the analytics database, so it stays up during the outage)."""
    tag = f'<script defer src="{analytics}/tracker.js" data-site="outage"></script>'
    items = "".join(
        f'<li data-track-item="{name}"><a href="/two">{name}</a></li>' for name in "abc"
    )
    pages = {
        "/one": f"<!doctype html><title>one</title>{tag}<ul data-track-list=results>{items}</ul>",
        "/two": f"<!doctype html><title>two</title>{tag}<p>two</p>",
    }

    def app(environ, start_response):
        body = pages.get(environ["PATH_INFO"])
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body.encode()]

    with served_in_thread(app) as base:
        yield base


@pytest.mark.browser
def test_a_page_through_a_database_restart_loses_nothing(
    cluster: Cluster, served, browser
) -> None:
    """A visitor reads a list, keeps clicking while the analytics database is down, opens an
    item (a navigation) and clicks on; the database comes back after 20 s. Every event the two
    pages made is stored exactly once."""
    app, base = served
    with db.engine.begin() as conn:
        conn.execute(sa.insert(Site).values(public_id="outage", name="Outage", origins=[]))
    site = host_site(base)
    home = next(site)
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(home + "/one")
        deadline = time.monotonic() + 15
        while len(rows_by_eid(cluster.url)) < 4 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert len(rows_by_eid(cluster.url)) == 4, "the page view and 3 impressions"

        cluster.stop()
        started = time.monotonic()
        for n in range(5):
            page.evaluate(f"window.analytics.track('while_down', {{n: {n}}})")
            page.wait_for_timeout(1500)
        assert get_status(base + "/healthz") == 503
        page.click("[data-track-item=b] a")  # a navigation, during the outage
        page.wait_for_url("**/two")
        page.wait_for_load_state("load")  # deferred scripts, the tracker among them, have run
        for n in range(5, 10):
            page.evaluate(f"window.analytics.track('while_down', {{n: {n}}})")
            page.wait_for_timeout(1000)
        page.wait_for_timeout(max(0, OUTAGE_SECONDS - (time.monotonic() - started)) * 1000)
        cluster.start()
        wait_healthy(base)

        deadline = time.monotonic() + 90  # the tracker's backoff is at most a minute
        stored = rows_by_eid(cluster.url)
        while len(stored) < 16 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
            stored = rows_by_eid(cluster.url)
        waited = time.monotonic() - started
    finally:
        context.close()
        next(site, None)

    engine = sa.create_engine(cluster.url)
    with engine.connect() as conn:
        names = Counter(conn.execute(sa.select(Event.name)).scalars())
        ns = sorted(
            int(props["n"])
            for props in conn.execute(
                sa.select(Event.props).where(Event.name == "while_down")
            ).scalars()
        )
    engine.dispose()
    print(
        f"\n[outage] the page's events, {waited:.0f} s after the database stopped "
        f"({OUTAGE_SECONDS} s down): {dict(names)}"
    )
    assert max(stored.values()) == 1, "nothing stored twice"
    assert names == {"pageview": 2, "impression": 3, "item_click": 1, "while_down": 10}
    assert ns == list(range(10)), "none lost"
    assert errors == []
