"""What the rollup refresher costs per event it counts, against what storing the event cost.

Under load the refresher's share is hard to read: a 10 s run holds a varying number of its
rounds, and the request threads' CPU moves by more than the refresher's whole cost from one run
to the next. Here nothing else runs. Events go in as the group writer stores them (its prepared
statement, three rows a statement, each event a visitor and a visit of its own, as in the ingest
suite), then one refresh round counts them, on the same day, while the day grows:

- the first round builds the day whole; each later round recounts only what its added rows
  touch (rollups/delta.py);
- the refresher's CPU is this process's (`process_time`) and that of the database backend
  serving its session (from /proc: the database must run on this machine, as the throw-away
  server and CI's do); the storing's is that of the backends that ran the INSERTs.

    python bench/refresh_cost.py [EVENTS_PER_ROUND] [ROUNDS]
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics.ingest.writer import PREPARED_SQL, event_row, rows_json_bytes  # noqa: E402
from bench.cpu import process_seconds  # noqa: E402
from bench.database import drop_database, fresh_database, libpq_url  # noqa: E402

DATABASE = "analytics_bench_refresh"
GROUP = 3  # rows per statement: the group writer's mean under the ingest suite's load


@dataclass(frozen=True)
class Round:
    added: int  # events this round counted
    day: int  # events the day held after it
    whole: bool  # the first build (whole day) rather than a recount of the added rows
    wall: float  # seconds
    python_us: float  # the refresher's own CPU per added event
    database_us: float  # its database backend's CPU per added event
    store_us: float  # the database's CPU per event to store the added events


class Store:
    """Two writer connections, as two workers' group writers, storing events of one day."""

    def __init__(self, url: str, site_id: int) -> None:
        self.site_id = site_id
        self.conns = [psycopg.connect(libpq_url(url), autocommit=True) for _ in range(2)]
        for conn in self.conns:
            conn.pgconn.prepare(b"bench_rows", PREPARED_SQL)
        self.pids = [conn.info.backend_pid for conn in self.conns]
        self.made = 0

    def add(self, events: int) -> float:
        """Store `events` new events; return the database's CPU seconds for it."""
        before = sum(process_seconds(pid) for pid in self.pids)
        first, self.made = self.made, self.made + events
        parts = [range(first + n, first + events, len(self.conns)) for n in range(len(self.conns))]
        threads = [
            threading.Thread(target=self._write, args=(conn, part))
            for conn, part in zip(self.conns, parts, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(process_seconds(pid) for pid in self.pids) - before

    def _write(self, conn: psycopg.Connection, numbers: range) -> None:
        numbers = list(numbers)
        for at in range(0, len(numbers), GROUP):
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            rows = [
                event_row(
                    site_id=self.site_id, source="tracker", name="pageview", occurred_at=now,
                    received_at=now, visitor_id=f"v{n:015x}", session_id=f"bench-{n}",
                    path="/a", referrer="https://ref.example/", utm_source="x",
                    browser="Chrome", os="Linux", device="desktop", props={"screen": 1280},
                )  # fmt: skip
                for n in numbers[at : at + GROUP]
            ]
            res = conn.pgconn.exec_prepared(b"bench_rows", [rows_json_bytes(rows)])
            if res.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise RuntimeError(res.error_message.decode("utf-8", "replace"))

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def measure(per_round: int = 35_000, rounds: int = 4) -> list[Round]:
    """The first build of a day of `per_round` events, then `rounds` recounts of as many added
    each. A round here is what a refresher round under a load of `per_round` / 10 events/s
    counts (ROLLUP_INTERVAL's default is 10 s)."""
    from analytics import create_app
    from analytics.extensions import db
    from analytics.rollups.refresh import refresh
    from bench.ingest import _setup

    url = fresh_database(DATABASE)
    found: list[Round] = []
    try:
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench", PYTHONPATH=str(ROOT))
        _, site_id = _setup(url, env)
        # One pooled connection: the backend whose CPU is read is the one the round used.
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "SECRET_KEY": "bench",
                "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0},
            }
        )
        store = Store(url, site_id)
        try:
            for n in range(rounds + 1):
                stored = store.add(per_round)
                with app.app_context():
                    pid = db.session.execute(db.text("SELECT pg_backend_pid()")).scalar_one()
                    db.session.commit()
                    cpu, backend, wall = time.process_time(), process_seconds(pid), time.monotonic()
                    if refresh() != 1:
                        raise RuntimeError("the refresh round did not count the day")
                    wall = time.monotonic() - wall
                    cpu, backend = time.process_time() - cpu, process_seconds(pid) - backend
                    db.session.remove()
                found.append(
                    Round(
                        added=per_round, day=store.made, whole=n == 0, wall=wall,
                        python_us=cpu / per_round * 1e6, database_us=backend / per_round * 1e6,
                        store_us=stored / per_round * 1e6,
                    )  # fmt: skip
                )
        finally:
            store.close()
            with app.app_context():
                db.engine.dispose()
    finally:
        drop_database(DATABASE)
    return found


if __name__ == "__main__":
    from bench.database import postgres

    with postgres():
        for found in measure(*(int(a) for a in sys.argv[1:3])):
            print(found)
