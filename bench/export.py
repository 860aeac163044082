"""Raw CSV export of a million events: time and memory, to show the stream stays flat.

    python bench/export.py [--rows 1000000]

Needs PostgreSQL: BENCH_DATABASE_URL (an admin URL; a database `analytics_export_bench` is
recreated there) or the throw-away server that .ci/start-postgres starts. Seeds the events with
one `generate_series` INSERT, then downloads `/export/events.csv` through the app (logged in) and
prints rows, seconds, rows/s, and the peak memory growth of this process while streaming, which
must not grow with the number of rows.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.extensions import db  # noqa: E402
from analytics.sites import create_site  # noqa: E402
from analytics.users import create_user  # noqa: E402
from bench.database import drop_database, fresh_database, migrated_app  # noqa: E402

NAME = "analytics_export_bench"
SEED = """
INSERT INTO events (site_id, occurred_at, id, received_at, source, name, category, session_id,
                    visitor_id, path, browser, os, device, schema_version, props)
SELECT :site, now()::timestamp - (g || ' seconds')::interval, gen_random_uuid(), now(), 'tracker',
       CASE WHEN g % 10 = 0 THEN 'click' ELSE 'pageview' END, NULL, 's' || (g / 5),
       'v' || (g / 20), '/page/' || (g % 500), 'Firefox', 'Linux', 'desktop', 1,
       jsonb_build_object('n', g, 'label', 'row ' || g)
FROM generate_series(1, :rows) AS g
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    app = migrated_app(fresh_database(NAME))
    with app.app_context():
        site = create_site("Bench")
        create_user("bench@example.org", "bench-password", "viewer")
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(sa.text(SEED), {"site": site.id, "rows": rows})
        print(f"seeded {rows:,} events in {time.perf_counter() - started:.1f} s")
        public_id = site.public_id
        db.session.remove()

    client = app.test_client()
    client.post("/login", data={"email": "bench@example.org", "password": "bench-password"})
    before = peak_rss_mb()
    started = time.perf_counter()
    response = client.get(f"/export/events.csv?site={public_id}&period=all")
    assert response.status_code == 200 and response.is_streamed, response.status
    size = lines = 0
    for chunk in response.response:
        size += len(chunk)
        lines += chunk.count(b"\r\n")
    response.close()
    seconds = time.perf_counter() - started
    print(
        f"exported {lines - 1:,} rows ({size / 1e6:,.0f} MB) in {seconds:.1f} s, "
        f"{(lines - 1) / seconds:,.0f} rows/s; peak memory grew by {peak_rss_mb() - before:.0f} MB "
        f"(process peak {peak_rss_mb():.0f} MB)"
    )
    assert lines - 1 == rows, "the CSV must hold every row"
    with app.app_context():
        db.engine.dispose()
    drop_database(NAME)


if __name__ == "__main__":
    main()
