"""Ingest throughput: our app vs a bare Flask endpoint, both under gunicorn, in the same run.

    python bench/ingest.py [--seconds 20] [--rounds 3] [--connections 16]
    (BENCH_THREADS=N sets gunicorn's threads per worker, default 4, as in `make run`)

Needs `wrk` (apt-get install wrk) and PostgreSQL: BENCH_DATABASE_URL (an admin URL; a database
`analytics_bench` is recreated there) or the throw-away server that .ci/start-postgres starts.
Prints requests/s and events/s for single events and 100-event batches, the ratio of each to the
bare endpoint, and checks that every 2xx answer left a row in the database. Our app runs as under
`make run`, with its rollup triggers and refresher thread: while wrk posts to it, the rollup lag
is sampled every second (bench/freshness.py), then polled until the queue is empty (up to 90 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import fresh_database, libpq_url  # noqa: E402
from bench.freshness import Freshness, LagSampler, summary  # noqa: E402
from bench.serving import THREADS, serve, stop  # noqa: E402

BIN = Path(sys.executable).parent
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"


def wrk(url: str, body: str, seconds: int, connections: int) -> tuple[float, int]:
    """Run wrk posting `body`; return (requests/s, number of non-2xx answers)."""
    lua = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "text/plain"\n'
        f'wrk.headers["User-Agent"] = "{UA}"\n'
        "bad = 0\n"
        "response = function(status) if status >= 300 then bad = bad + 1 end end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "-s",
            f.name,
            url + "/api/events",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, total, int(non2xx.group(1)) if non2xx else 0


def _executemany_worker(url: str, site_id: int, seconds: float, threads: int) -> int:
    """One process of the baseline: `threads` connections inserting 100-row batches."""
    import threading

    import psycopg

    from analytics.ingest.writer import _SQL, _postgres_params, event_row

    done = [0] * threads
    deadline = time.monotonic() + seconds

    def run(slot: int) -> None:
        with psycopg.connect(url) as conn:
            while time.monotonic() < deadline:
                rows = [
                    event_row(site_id=site_id, source="api", name="pageview") for _ in range(100)
                ]
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_SQL["postgresql"], [_postgres_params(r) for r in rows])
                done[slot] += 100

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done)


def bare_executemany(url: str, site_id: int, seconds: int, workers: int) -> float:
    """Events/s of bare psycopg executemany batches, with the app's processes and threads."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        counts = pool.map(
            _executemany_worker,
            [url] * workers,
            [site_id] * workers,
            [seconds] * workers,
            [4] * workers,
        )
        return sum(counts) / seconds


def measure(seconds: int = 20, connections: int = 16, workers: int = 2, rounds: int = 3) -> dict:
    """Run every configuration; return the medians, the ratios and the stored-row check."""
    if not any((Path(p) / "wrk").exists() for p in os.environ["PATH"].split(":")):
        raise RuntimeError("the ingest benchmark needs wrk: apt-get install wrk")

    url = fresh_database("analytics_bench")
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench", PYTHONPATH=str(ROOT))
    # The refresher runs as under `make run` (every 10 s by default): it is on the measured path.
    for name in ("ROLLUPS", "ROLLUP_INTERVAL"):
        env.pop(name, None)
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    public_id = subprocess.check_output(
        [str(BIN / "flask"), "--app", "wsgi", "sites", "create", "Bench"],
        cwd=ROOT,
        env=env,
        text=True,
    ).strip()
    event = {
        "site": public_id,
        "name": "pageview",
        "url": "https://bench.example/a?utm_source=x",
        "referrer": "https://ref.example/",
        "session": "bench-session",
        "screen": 1280,
    }
    single = json.dumps(event)
    batch = json.dumps([event] * 100)

    configs = [
        ("bare Flask, 1 event", "bench.bare_app:app", single),
        ("analytics, 1 event", "wsgi:app", single),
        ("bare Flask, 100-event batch", "bench.bare_app:app", batch),
        ("analytics, 100-event batch", "wsgi:app", batch),
    ]
    # The machine's speed drifts: interleave the configurations, repeat, keep the median.
    runs: dict[str, list[tuple[float, int, int]]] = {label: [] for label, _, _ in configs}
    fresh: dict[str, list[Freshness]] = {kind: [] for kind in ("1 event", "100-event batch")}
    acknowledged = 0  # events our app answered 2xx for, warm-ups included
    for _ in range(rounds):
        for label, module, body in configs:
            proc, base = serve(module, env, workers)
            try:
                if module == "wsgi:app":
                    # Sampled from the first post on: the warm-up's events wait in the queue too.
                    with LagSampler(libpq_url(url)) as sampler:
                        warm = wrk(base, body, 2, connections)  # imports, caches, pools
                        run = wrk(base, body, seconds, connections)
                        fresh[label.removeprefix("analytics, ")].append(sampler.drain())
                    per = 100 if "batch" in label else 1
                    acknowledged += sum(total - bad for _, total, bad in (warm, run)) * per
                else:
                    wrk(base, body, 2, connections)
                    run = wrk(base, body, seconds, connections)
                runs[label].append(run)
            finally:
                stop(proc)
    results = {label: sorted(r)[len(r) // 2] for label, r in runs.items()}

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        site_id = conn.execute(sa.text("SELECT id FROM sites")).scalar_one()
    engine.dispose()
    executemany_rate = bare_executemany(libpq_url(url), site_id, seconds, workers)
    ratios = {
        kind: results[f"analytics, {kind}"][0] / results[f"bare Flask, {kind}"][0]
        for kind in ("1 event", "100-event batch")
    }
    batch_events = results["analytics, 100-event batch"][0] * 100
    return {
        "settings": f"gunicorn {workers} workers x {THREADS} threads, wrk {connections} "
        f"connections, {seconds}s each, median of {rounds} interleaved rounds, PostgreSQL",
        "results": results,
        "ratios": ratios,
        "executemany_rate": executemany_rate,
        "batch_ratio": batch_events / executemany_rate,
        "acknowledged": acknowledged,
        "stored": stored,
        "freshness": {kind: summary(found) for kind, found in fresh.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        found: dict[str, Any] = measure(args.seconds, args.connections, args.workers, args.rounds)
    except RuntimeError as exc:
        sys.exit(str(exc))
    print(found["settings"])
    for label, (rate, _total, bad) in found["results"].items():
        per = 100 if "batch" in label else 1
        print(f"  {label:32s} {rate:9.0f} req/s {rate * per:10.0f} events/s  non-2xx {bad}")
    for kind, ratio in found["ratios"].items():
        print(f"  ratio analytics / bare, {kind}: {ratio:.2f}x")
    print(f"  bare psycopg executemany, 100-row batches {found['executemany_rate']:10.0f} events/s")
    print(f"  ratio analytics batch / bare executemany: {found['batch_ratio']:.2f}x")
    # wrk drops requests still in flight when a run ends; the server may still store those,
    # so there can be more rows than answers seen, never fewer.
    print(f"  events answered 2xx: {found['acknowledged']}, rows in events: {found['stored']}")
    for kind, lag in found["freshness"].items():
        drained = ", ".join("> 90" if s is None else f"{s:.0f}" for s in lag["drained_in"])
        rounds = lag["rounds"]
        print(
            f"  rollup lag, {kind}: max {lag['max']:.0f} s (under load {lag['max_under_load']:.0f}"
            f" s), median {lag['median']:.0f} s; queue empty {drained} s after the load; "
            f"{len(rounds)} refresh rounds, longest {max(rounds, default=0):.1f} s"
        )
    if found["stored"] < found["acknowledged"]:
        sys.exit("an acknowledged event is missing from the database")


if __name__ == "__main__":
    main()
