"""The write path under concurrency: group commit, exactly-once storage, failure of a whole group.

Real databases only. To make a group form on PostgreSQL, a test holds a lock on `events` from its
own connection: the first request's INSERT waits in the database (a write in flight), the next
requests queue behind it in the process's group writer, and all of them go in one statement once
the lock is released.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from analytics.ingest.writer import group_writer
from analytics.models import Event, utcnow
from tests.conftest import count

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
# One fixed time, so resends collide: the dedupe key is (site, occurred_at, eid).
TS = (utcnow() - dt.timedelta(hours=1)).replace(microsecond=0).isoformat() + "Z"


def event(site: str, eid: str) -> dict[str, Any]:
    return {"site": site, "name": "pageview", "path": "/", "ts": TS, "eid": eid}


def post(app: Flask, body: Any) -> tuple[int, dict[str, Any]]:
    res = app.test_client().post(
        "/api/events",
        data=json.dumps(body),
        headers={"User-Agent": CHROME},
        content_type="text/plain",
    )
    return res.status_code, res.json


def in_threads(app: Flask, bodies: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """Post every body from its own thread, all at once; answers in the order of `bodies`."""
    answers: list[Any] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(at: int) -> None:
        start.wait()
        answers[at] = post(app, bodies[at])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def events_locked(database_url: str) -> Iterator[sa.Connection]:
    """Hold a lock that makes every INSERT into `events` wait until the block ends (committed)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("LOCK TABLE events IN SHARE MODE"))
            yield conn
    finally:
        engine.dispose()


def waiting_on_lock(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO events%'"
                )
            ).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("grouped", [False, True])
def test_concurrent_overlapping_posts_store_each_event_once(app, site, grouped):
    """Eight threads post overlapping batches: each eid is stored once, the rest are duplicates."""
    app.config["INGEST_GROUP_COMMIT"] = grouped
    bodies = [[event(site.public_id, f"e{n}") for n in range(t, t + 10)] for t in range(8)]
    answers = in_threads(app, bodies)
    assert all(status == 202 for status, _ in answers), answers
    unique = {e["eid"] for body in bodies for e in body}
    assert count(Event) == len(unique) == 17
    sent = sum(len(body) for body in bodies)
    assert sum(answer.get("duplicates", 0) for _, answer in answers) == sent - len(unique)
    assert all(answer["accepted"] == 10 for _, answer in answers)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_group_reports_duplicates_per_request(app, site, database_url):
    """Requests queued behind a write in flight share one statement; RETURNING splits the count."""
    app.config["INGEST_GROUP_COMMIT"] = True
    writer = group_writer(app)
    with events_locked(database_url):
        first = threading.Thread(target=post, args=(app, event(site.public_id, "first")))
        first.start()
        wait_for(lambda: waiting_on_lock(database_url) == 1, "the first write to wait")
        bodies = [[event(site.public_id, f"e{n}") for n in range(t, t + 4)] for t in range(6)]
        answers: list[Any] = []
        threads = [
            threading.Thread(target=lambda b=b: answers.append(post(app, b))) for b in bodies
        ]
        for thread in threads:
            thread.start()
        wait_for(lambda: writer.pending() == len(bodies), "the requests to queue")
    first.join(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert [status for status, _ in answers] == [202] * len(bodies)
    assert count(Event) == 1 + 9  # "first", then e0..e8
    assert sum(answer.get("duplicates", 0) for _, answer in answers) == 6 * 4 - 9


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_failed_group_fails_every_request_in_it_and_stores_nothing(app, make_site, database_url):
    """A row the database refuses (its site was deleted) fails its whole group with 503s."""
    app.config["INGEST_GROUP_COMMIT"] = True
    kept, doomed = make_site("Kept"), make_site("Doomed")
    kept_id, doomed_id, doomed_pk = kept.public_id, doomed.public_id, doomed.id
    # Warm the site cache: afterwards the app still believes in the doomed site for a while.
    assert post(app, event(kept_id, "warm"))[0] == 202
    assert post(app, event(doomed_id, "warm"))[0] == 202
    writer = group_writer(app)
    with events_locked(database_url) as conn:
        answers: dict[str, Any] = {}
        first = threading.Thread(
            target=lambda: answers.__setitem__("first", post(app, event(kept_id, "first")))
        )
        first.start()
        wait_for(lambda: waiting_on_lock(database_url) == 1, "the first write to wait")
        group = {f"kept{n}": event(kept_id, f"k{n}") for n in range(4)}
        group["doomed"] = [event(doomed_id, "d1"), event(doomed_id, "d2")]
        threads = [
            threading.Thread(target=lambda k=k, b=b: answers.__setitem__(k, post(app, b)))
            for k, b in group.items()
        ]
        for thread in threads:
            thread.start()
        wait_for(lambda: writer.pending() == len(group), "the group to queue")
        # A database error in the middle of the group: one of its rows now breaks a foreign key.
        conn.execute(sa.text("DELETE FROM sites WHERE id = :id"), {"id": doomed_pk})
    first.join(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert answers["first"][0] == 202
    for name in group:
        status, body = answers[name]
        assert status == 503, (name, body)
        assert "nothing was stored" in body["error"]
    engine = sa.create_engine(database_url)
    with engine.connect() as check:
        keys = check.execute(sa.text("SELECT dedupe_key FROM events ORDER BY 1")).scalars().all()
    engine.dispose()
    assert keys == ["first", "warm"]  # the kept site's warm-up; nothing of the failed group
    # The writer goes on: the next request is a group of its own and succeeds.
    assert post(app, event(kept_id, "after"))[0] == 202


UTC_TIME = dt.datetime(2026, 3, 1, 10, 30, 15, 123456)
OFFSET_TIME = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.mark.parametrize("when", [UTC_TIME, OFFSET_TIME], ids=["naive", "offset"])
@pytest.mark.parametrize("big", [1, 123456789012345678901234567890], ids=["int", "long-int"])
@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "grouped"])
def test_a_batch_stores_every_column_as_a_lone_row_does(app, site, when, big, grouped):
    """The JSON statement of a batch and the VALUES of a lone row store the same values: quotes,
    backslashes and non-ASCII text, nested properties, ids, and an offset time as UTC. Written by
    orjson (naive times) or by `json` (an offset time, an integer orjson cannot hold) alike, sent
    as text through psycopg or as bytes through libpq (the group writer)."""
    from analytics.extensions import db
    from analytics.ingest.writer import event_row, store_events

    app.config["INGEST_GROUP_COMMIT"] = grouped

    fields = dict(
        site_id=site.id, name="pageview", source="api", path='/a "b" \\c/é', url="https://x.org/é?q=1",
        referrer="https://ref.example/", session_id="s-1", visitor_id="v" * 16, browser="Chrome",
        country="FR", item_id="RSA", occurred_at=when, received_at=when,
        props={"nested": {"list": [1, 2.5, None, "ü", "😀"]}, "flag": True, "quote": '"', "n": big},
    )
    lone, pair = event_row(**fields), [event_row(**fields), event_row(**fields)]
    for i, row in enumerate([lone, *pair]):
        row["dedupe_key"] = f"k{i}"
    assert store_events([lone]) == 1 and store_events(pair) == 2
    stored = db.session.execute(
        sa.select(Event).where(Event.id.in_([r["id"] for r in [lone, *pair]]))
    ).scalars().all()
    assert len(stored) == 3
    columns = [c.name for c in Event.__table__.columns if c.name not in {"id", "dedupe_key"}]
    shapes = {tuple(repr(getattr(e, c)) for c in columns) for e in stored}
    assert len(shapes) == 1
    assert stored[0].occurred_at == stored[0].received_at == UTC_TIME
    assert stored[0].props == fields["props"] and stored[0].path == fields["path"]


def test_a_write_that_ends_wakes_the_next_leader_before_its_own_group(monkeypatch):
    """The next write's leader is woken first: woken after the group's requests, it queued for
    the GIL behind all of them while the database waited (README, Benchmarks)."""
    from analytics.ingest import writer

    woken: list[str] = []

    class Recorded(writer._Waiting):
        __slots__ = ()

        def __init__(self, rows: list[dict[str, Any]]) -> None:
            super().__init__(rows)
            lock, name = self.wake, rows[0]["name"]

            class Wake:  # the waiting's lock, noting each release
                acquire = lock.acquire

                @staticmethod
                def release() -> None:
                    woken.append(name)
                    lock.release()

            self.wake = Wake()

    monkeypatch.setattr(writer, "_Waiting", Recorded)
    group_writer = writer.GroupWriter(sa.create_engine("sqlite://"))
    gates = [threading.Event() for _ in range(3)]
    written: list[list[str]] = []

    def insert(rows: list[dict[str, Any]]) -> None:
        written.append([row["name"] for row in rows])
        assert gates[len(written) - 1].wait(30)
        return None  # every row new

    monkeypatch.setattr(group_writer, "_insert", insert)
    threads: list[threading.Thread] = []

    def write(name: str) -> None:
        thread = threading.Thread(target=group_writer.write, args=([{"name": name, "id": name}],))
        thread.start()
        threads.append(thread)

    write("a")  # leads the first write, held at its gate
    wait_for(lambda: len(written) == 1, "the first write")
    write("b")
    write("c")
    wait_for(lambda: group_writer.pending() == 2, "b and c to queue")
    gates[0].set()  # a's write ends: b leads b and c
    wait_for(lambda: len(written) == 2, "the second write")
    write("d")
    write("e")
    wait_for(lambda: group_writer.pending() == 2, "d and e to queue")
    del woken[:]
    gates[1].set()  # b's write ends: d leads the next one, then b and c are answered
    wait_for(lambda: len(written) == 3, "the third write")
    gates[2].set()
    for thread in threads:
        thread.join(30)
    assert written == [["a"], ["b", "c"], ["d", "e"]]
    assert woken[:3] == ["d", "b", "c"]
