"""The ingest bench paces each case's later runs by what its last run added to each request:
the 3 s probes that calibrate the first can fall between two refresher rounds and undershoot."""

from __future__ import annotations

from bench.ingest import Gunicorn, Run, load, next_delay
from bench.serving import THREADS


def run(rate: float) -> Run:
    return Run(rate=rate, total=1, bad=0, p50=0.0, p99=0.0)


def test_a_run_that_undershot_gets_a_shorter_delay():
    # 16 connections at 2,000 requests/s: one request every 8 ms each. With a 6 ms delay a run
    # sent 1,600/s (10 ms each), so each request added 4 ms: the next waits 4 ms.
    assert round(next_delay(6.0, run(1600), 16, 2000), 6) == 4.0


def test_at_a_steady_latency_the_next_run_meets_the_pace():
    latency = 0.003  # seconds each request adds to the delay, whatever the delay
    delay_ms = next_delay(5.0, run(16 / (0.005 + latency)), 16, 2000)
    assert round(16 / (delay_ms / 1000 + latency)) == 2000


def test_a_run_slower_than_the_pace_without_delay_gets_none():
    assert next_delay(1.0, run(1000), 16, 2000) == 0.0


def test_the_load_fills_every_request_thread_of_the_server_under_test():
    # `make run`'s 2 x 16 threads get 32 connections: each worker holds as many requests as it
    # has threads, as under a busy site's reverse proxy, and its group writer sees them all.
    assert load(Gunicorn()) == 2 * THREADS
    assert load(Gunicorn(workers=4, threads=8)) == 32
    assert load(Gunicorn(workers=1, threads=4)) == 4
