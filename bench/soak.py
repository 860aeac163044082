"""Soak: ingest at 80 % of the measured maximum rate for minutes, with the dashboards read at
the same time, under gunicorn as `make run` serves it.

    python bench/soak.py [--seconds 600]

Reports errors (wrk's non-2xx and socket errors, and dashboard reads that did not answer 200),
the p99 of the ingest posts, the events answered 2xx against the rows stored, and the workers'
memory (RSS, summed) one minute in (or a tenth of the run, when shorter) and at the end.
Needs `wrk` and PostgreSQL, like bench/ingest.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import fresh_database  # noqa: E402
from bench.ingest import PACED, Case, _setup, wrk  # noqa: E402
from bench.serving import serve, stop  # noqa: E402

BIN = Path(sys.executable).parent
DATABASE = "analytics_bench_soak"
EMAIL, PASSWORD = "soak@example.org", "measured-twice-cut-once"
CONNECTIONS = 16
READS = ("/overview?site={site}&period=today", "/live.json?site={site}",
         "/overview?site={site}&period=30d", "/actions?site={site}&period=today")  # fmt: skip


@dataclass(frozen=True)
class Soak:
    seconds: int
    max_rate: float  # single events/s, unpaced, measured first
    target_rate: float
    rate: float
    p50: float
    p99: float
    non_2xx: int
    socket_errors: int
    # Events answered 2xx (wrk's completed requests minus non-2xx), warm-up and maximum-rate
    # runs included, against the rows stored: more rows than answers by at most the requests in
    # flight when each wrk run stopped (wrk drops those answers; the server still stores them).
    answered: int
    server_answered: int  # 2xx the server itself answered to POST /api/events (its access log)
    stored: int
    in_flight: int
    reads: int
    read_errors: int
    read_p95: float
    rss_early: int  # bytes, the workers together, at `early_at` seconds
    rss_end: int
    early_at: int


def _answered_2xx(log: Path) -> int:
    """How many `POST /api/events` the server answered 2xx, from its access log (format in
    gunicorn.conf.py: `[time] "POST /api/events HTTP/1.1" 202 ...`)."""
    found = 0
    with open(log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"POST /api/events ' in line and re.search(r'" 2\d\d ', line):
                found += 1
    return found


def worker_rss(master: int) -> int:
    """Resident memory of the master's children (gunicorn workers and their refreshers)."""
    total = 0
    pending = [master]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for child in children:
            pending.append(child)
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(found.group(1)) * 1024 if found else 0
    return total


def _reader(base: str, site: str, stop_at: float, out: dict) -> None:
    """Read dashboards in a loop, one page after another, as a person with the tab open."""
    session = requests.Session()
    session.post(f"{base}/login", data={"email": EMAIL, "password": PASSWORD}).raise_for_status()
    times, errors, i = [], 0, 0
    while time.monotonic() < stop_at:
        url = base + READS[i % len(READS)].format(site=site)
        started = time.perf_counter()
        try:
            ok = session.get(url, allow_redirects=False, timeout=60).status_code == 200
        except requests.RequestException:
            ok = False
        times.append(time.perf_counter() - started)
        errors += not ok
        i += 1
        time.sleep(0.5)
    session.close()
    out.update(times=times, errors=errors)


def run(seconds: int = 600) -> Soak:
    url = fresh_database(DATABASE)
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench", PYTHONPATH=str(ROOT))
    for name in ("ROLLUPS", "ROLLUP_INTERVAL", "INGEST_GROUP_COMMIT", "LEGACY_SITE"):
        env.pop(name, None)
    env["PROXY_COUNT"] = "1"
    public_id, _ = _setup(url, env)
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "users", "create", EMAIL, "--password", PASSWORD],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    event = {
        "site": public_id,
        "name": "pageview",
        "url": "https://soak.example/a",
        "referrer": "https://ref.example/",
        "session": "soak-SEQ",
        "eid": "soak-SEQ",
        "screen": 1280,
    }
    case = Case("soak", "bench.served_app:app", "/api/events", json.dumps(event))
    # The server's access log (as under `make run`): its own count of the 2xx it answered.
    log = Path(tempfile.mkdtemp(prefix="analytics-soak-")) / "access.log"
    proc, base = serve(case.module, env, extra=("--access-logfile", str(log)))
    try:
        warm = wrk(base, case, 2, CONNECTIONS)  # imports, caches, pools
        top = wrk(base, case, 10, CONNECTIONS)
        target = PACED * top.rate
        # wrk waits `delay` after each answer, so a connection sends one request per delay +
        # latency: measure the latency at a first guess, then aim again.
        delay = 1000 * CONNECTIONS / target
        probe = wrk(base, case, 5, CONNECTIONS, delay_ms=delay)
        latency = 1000 * CONNECTIONS / probe.rate - delay
        delay = max(0.0, 1000 * CONNECTIONS / target - latency)
        early_at = min(60, max(5, seconds // 10))
        out: dict = {}
        rss: dict[str, int] = {}
        stop_at = time.monotonic() + seconds
        reader = threading.Thread(target=_reader, args=(base, public_id, stop_at, out))
        reader.start()

        def sample() -> None:
            time.sleep(early_at)
            rss["early"] = worker_rss(proc.pid)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        paced = wrk(base, case, seconds, CONNECTIONS, delay_ms=delay)
        rss["end"] = worker_rss(proc.pid)
        reader.join()
        sampler.join(timeout=5)
        acknowledged = sum(r.total - r.bad for r in (warm, top, probe, paced))
    finally:
        stop(proc)  # gracefully: requests in flight are answered (and logged) first
    server_acknowledged = _answered_2xx(log)
    shutil.rmtree(log.parent, ignore_errors=True)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    times = sorted(out.get("times", [0.0]))
    return Soak(
        seconds=seconds,
        max_rate=top.rate,
        target_rate=target,
        rate=paced.rate,
        p50=paced.p50,
        p99=paced.p99,
        non_2xx=sum(r.bad for r in (warm, top, probe, paced)),
        socket_errors=sum(r.socket_errors for r in (warm, top, probe, paced)),
        answered=acknowledged,
        server_answered=server_acknowledged,
        stored=stored,
        in_flight=4 * CONNECTIONS,
        reads=len(times),
        read_errors=out.get("errors", 0),
        read_p95=times[min(len(times) - 1, int(0.95 * len(times)))],
        rss_early=rss.get("early", 0),
        rss_end=rss["end"],
        early_at=early_at,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    found = run(parser.parse_args().seconds)
    print(found)


if __name__ == "__main__":
    main()
