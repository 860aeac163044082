"""Rollup freshness while a benchmark writes: the lag, sampled from a connection of its own.

Lag = how long the oldest change not yet rolled up has waited: now() - min(rollup_queue.queued_at)
(0 when the queue is empty), in the database's own clock (queued_at is naive UTC). The lease row
(`rollup_leases`) shows the refresher's rounds without touching its code: the holder extends the
lease (expires_at = now + LEASE_SECONDS) after each day it recomputes and moves expires_at into
the past when it lets go, so the time between two of those stamps is one round.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import psycopg

from analytics.rollups.refresh import LEASE, LEASE_SECONDS

LAG_SQL = (
    "SELECT extract(epoch FROM (now() AT TIME ZONE 'utc') - min(queued_at))::float8 "
    "FROM rollup_queue"
)
LEASE_SQL = "SELECT expires_at, (now() AT TIME ZONE 'utc') FROM rollup_leases WHERE name = %s"
LAG_EVERY = 1.0  # seconds between two lag samples
LEASE_EVERY = 0.25  # the lease more often: a refresh round can be shorter than a second


@dataclass
class Freshness:
    """What one run saw: lag samples under load, the drain after it, the refresh rounds."""

    under_load: list[float] = field(default_factory=list)
    after_load: list[float] = field(default_factory=list)
    drained_in: float | None = None  # seconds from the end of the load to an empty queue
    rounds: list[float] = field(default_factory=list)  # seconds per refresh round seen
    events: int = 0  # rows in `events` once drained: what the last round recomputed, one day

    @property
    def max_lag(self) -> float:
        """The longest wait seen, under load or after it until the queue was empty."""
        return max([0.0, *self.under_load, *self.after_load])


def settle(base_url: str, url: str, timeout: float = 600.0) -> None:
    """Before a sampled run: let the served app's refresher empty the queue of what earlier
    runs left (their servers stopped before refreshing it), so that their wait is not counted
    as this run's lag. A first request starts the refresher."""
    urllib.request.urlopen(base_url + "/healthz", timeout=10).close()
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM rollup_queue").fetchone()[0]:
            if time.monotonic() > deadline:
                queued = conn.execute("SELECT count(*) FROM rollup_queue").fetchone()[0]
                lease = conn.execute(
                    "SELECT holder, expires_at - now(), refreshed_at FROM rollup_leases"
                ).fetchall()
                refreshers = subprocess.run(
                    ["ps", "-o", "pid,ppid,etime,time,args", "-C", "rollup-refresh"],
                    capture_output=True, text=True, check=False,
                ).stdout  # fmt: skip
                working = conn.execute(
                    "SELECT state, wait_event, now() - xact_start, left(query, 120) "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state <> 'idle' AND pid <> pg_backend_pid()"
                ).fetchall()
                raise RuntimeError(
                    f"the rollup queue was not empty after {timeout:.0f} s: {queued} rows, "
                    f"lease {lease}, refresher processes:\n{refreshers}\nbackends: {working}"
                )
            time.sleep(0.5)


class LagSampler:
    """A thread sampling the lag every second and the lease every quarter second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.found = Freshness()
        self._load_ended: float | None = None
        self._empty_at: float | None = None
        self._stop = threading.Event()
        self._stamps: list[tuple[dt.datetime, bool]] = []  # (lease expires_at, still held)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.found.rounds = _rounds(self._stamps)
        if self._error is not None and exc[0] is None:
            raise RuntimeError(f"lag sampler failed: {self._error}") from self._error

    def drain(self, timeout: float = 90.0) -> Freshness:
        """Mark the end of the load; wait until the queue is empty (up to `timeout` s)."""
        self._load_ended = time.monotonic()
        deadline = self._load_ended + timeout
        while self._empty_at is None and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.1)
        if self._empty_at is not None:
            self.found.drained_in = self._empty_at - self._load_ended
        with psycopg.connect(self.url) as conn:
            self.found.events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return self.found

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                next_lag = time.monotonic()
                while not self._stop.is_set():
                    now = time.monotonic()
                    self._lease(conn)
                    if now >= next_lag:
                        next_lag += LAG_EVERY
                        self._lag(conn, now)
                    self._stop.wait(LEASE_EVERY)
        except BaseException as exc:  # reported by __exit__; the benchmark goes on meanwhile
            self._error = exc

    def _lag(self, conn: psycopg.Connection, now: float) -> None:
        lag = conn.execute(LAG_SQL).fetchone()[0]
        lag = max(lag or 0.0, 0.0)
        if self._load_ended is None:
            self.found.under_load.append(lag)
        elif self._empty_at is None:
            if lag == 0.0:
                self._empty_at = now
            else:
                self.found.after_load.append(lag)

    def _lease(self, conn: psycopg.Connection) -> None:
        row = conn.execute(LEASE_SQL, (LEASE,)).fetchone()
        if row is None:
            return
        expires_at, db_now = row
        if not self._stamps or self._stamps[-1][0] != expires_at:
            self._stamps.append((expires_at, expires_at > db_now))


def _rounds(stamps: list[tuple[dt.datetime, bool]]) -> list[float]:
    """Seconds from each stamp of a holding (taken or extended) to the next one: each is one
    refresh round, a queued day's recomputation. The step from the last extension to letting go
    is only the check that nothing is left (milliseconds), so it is not counted; when that
    extension fell between two looks, the step to letting go is the round and counts."""
    hold = dt.timedelta(seconds=LEASE_SECONDS)
    marks = [(at - hold if held else at + dt.timedelta(seconds=1), held) for at, held in stamps]
    out = []
    for (earlier, was_held), (later, is_held) in zip(marks, marks[1:], strict=False):
        seconds = (later - earlier).total_seconds()
        if was_held and (is_held or seconds > LEASE_EVERY):
            out.append(seconds)
    return out


def summary(runs: list[Freshness]) -> dict:
    """Figures over several runs of one endpoint: worst lag, median sample, drains, rounds."""
    samples = [lag for run in runs for lag in run.under_load]
    rounds = [r for run in runs for r in run.rounds]
    return {
        "max": max(run.max_lag for run in runs),
        "max_under_load": max(samples, default=0.0),
        "median": statistics.median(samples) if samples else 0.0,
        "drained_in": [run.drained_in for run in runs],
        "rounds": rounds,
        # (seconds, events of the day): a round recomputes the whole day from raw events
        "last_rounds": [(run.rounds[-1], run.events) for run in runs if run.rounds],
    }
