"""Raw CSV export of a million events through gunicorn: rows/s and the workers' peak memory.

    python bench/export.py [--rows 1000000]

Needs PostgreSQL: BENCH_DATABASE_URL (an admin URL; a database `analytics_export_bench` is
recreated there) or the throw-away server that .ci/start-postgres starts. Seeds the events with
one `generate_series` INSERT, serves the app as `make run` does (gunicorn, 2 workers x 16
threads), logs in, downloads `/export/events.csv` over HTTP and prints rows, seconds, rows/s and
the peak RSS of the gunicorn workers (VmHWM, the largest over the workers), each against its
target. `run(rows)` returns the same figures for a harness.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.extensions import db  # noqa: E402
from analytics.sites import create_site  # noqa: E402
from analytics.users import create_user  # noqa: E402
from bench.database import drop_database, fresh_database, migrated_app  # noqa: E402
from bench.ingest import serve  # noqa: E402
from bench.serving import THREADS  # noqa: E402

NAME = "analytics_export_bench"
WORKERS = 2
TARGET_ROWS_PER_S = 100_000
TARGET_PEAK_RSS_MB = 200
EMAIL, PASSWORD = "bench@example.org", "measured-twice-cut-once"
SEED = """
INSERT INTO events (site_id, occurred_at, id, received_at, source, name, category, session_id,
                    visitor_id, path, browser, os, device, schema_version, props)
SELECT :site, now()::timestamp - (g || ' seconds')::interval, gen_random_uuid(), now(), 'tracker',
       CASE WHEN g % 10 = 0 THEN 'click' ELSE 'pageview' END, NULL, 's' || (g / 5),
       'v' || (g / 20), '/page/' || (g % 500), 'Firefox', 'Linux', 'desktop', 1,
       jsonb_build_object('n', g, 'label', 'row ' || g)
FROM generate_series(1, :rows) AS g
"""


def _seed(url: str, rows: int) -> str:
    """Migrate, create a site and a user, insert `rows` events; return the site's public id."""
    app = migrated_app(url)
    with app.app_context():
        site = create_site("Bench")
        create_user(EMAIL, PASSWORD, "viewer")
        with db.engine.begin() as conn:
            conn.execute(sa.text(SEED), {"site": site.id, "rows": rows})
            conn.execute(sa.text("ANALYZE events"))
        public_id = site.public_id
        db.session.remove()
        db.engine.dispose()
    return public_id


def _workers(master: int) -> list[int]:
    """The pids of gunicorn's workers (the master's children), once all of them have started."""
    deadline = time.time() + 20
    while len(pids := _children(master)) < WORKERS and time.time() < deadline:
        time.sleep(0.1)
    assert len(pids) == WORKERS, f"{len(pids)} gunicorn workers, not {WORKERS}"
    return pids


def _children(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s+{master}$", status, re.M):
                pids.append(int(entry.name))
    return pids


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has ever had, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024


def _logged_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{base}/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD}
    )
    assert answer.ok and "/login" not in answer.url, "login failed"
    return session


def _download(session: requests.Session, url: str) -> tuple[int, int]:
    """Stream the CSV and return (data rows, bytes); the header line is not a row."""
    size = lines = 0
    last = b""
    with session.get(url, stream=True) as response:
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    return lines - 1, size


def run(rows: int) -> dict:
    """Seed `rows` events, export them through gunicorn and return the figures and verdicts."""
    url = fresh_database(NAME)
    public_id = _seed(url, rows)
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench", PYTHONPATH=str(ROOT))
    proc, base = serve("wsgi:app", env, WORKERS)
    try:
        workers = _workers(proc.pid)  # the port opens before the workers have started
        session = _logged_in(base)
        export = f"{base}/export/events.csv?site={public_id}&period=all"
        _download(session, export + "&name=warm-up")  # imports and pools, in one worker
        before = max(_peak_rss_mb(pid) for pid in workers)
        started = time.perf_counter()
        exported, size = _download(session, export)
        seconds = time.perf_counter() - started
        peak = max(_peak_rss_mb(pid) for pid in workers)
    finally:
        proc.terminate()
        proc.wait()
    drop_database(NAME)
    assert exported == rows, f"the CSV holds {exported:,} rows, not {rows:,}"
    rate = exported / seconds
    return {
        "rows": exported,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rate,
        "peak_rss_mb": peak,
        "peak_rss_before_mb": before,
        "rows_per_s_met": rate >= TARGET_ROWS_PER_S,
        "peak_rss_met": peak < TARGET_PEAK_RSS_MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    figures = run(parser.parse_args().rows)
    verdict = {True: "met", False: "missed"}
    print(
        f"gunicorn {WORKERS} workers x {THREADS} threads, "
        f"PostgreSQL: exported {figures['rows']:,} rows ({figures['bytes'] / 1e6:,.0f} MB) "
        f"in {figures['seconds']:.1f} s"
    )
    print(
        f"  {figures['rows_per_s']:10,.0f} rows/s     target >= {TARGET_ROWS_PER_S:,}: "
        f"{verdict[figures['rows_per_s_met']]}"
    )
    print(
        f"  {figures['peak_rss_mb']:10,.0f} MB peak RSS  target < {TARGET_PEAK_RSS_MB}: "
        f"{verdict[figures['peak_rss_met']]} (before the download: "
        f"{figures['peak_rss_before_mb']:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
