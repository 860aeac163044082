"""Dashboard response times on demo data: the baseline that rollup tables will have to beat.

    python bench/dashboard.py [--events 200000] [--days 90]

Needs PostgreSQL: BENCH_DATABASE_URL (an admin URL; a database `analytics_dashboard_bench` is
recreated there) or the throw-away server that .ci/start-postgres starts. Fills a site with
`demo load` data, logs in, and prints the median time of three requests of each dashboard page
for a 30-day and a 12-month period.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.demo_data import load  # noqa: E402
from analytics.extensions import db  # noqa: E402
from analytics.sites import get_or_create_site  # noqa: E402
from analytics.users import create_user  # noqa: E402
from bench.database import drop_database, fresh_database, migrated_app  # noqa: E402

NAME = "analytics_dashboard_bench"
PAGES = ["/overview", "/actions", "/lists", "/actions/pageview", "/csv/timeseries.csv"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    app = migrated_app(fresh_database(NAME))
    with app.app_context():
        site = get_or_create_site("demo", "Demo site")
        create_user("bench@example.org", "bench-password", "viewer")
        started = time.perf_counter()
        load(site.id, args.days, args.events, seed=1)
        print(f"loaded {args.events:,} demo events in {time.perf_counter() - started:.1f} s")
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE events"))
        db.session.remove()

    client = app.test_client()
    client.post("/login", data={"email": "bench@example.org", "password": "bench-password"})
    print(f"{'page':24s} {'30 days':>10s} {'12 months':>10s}")
    for page in PAGES:
        cells = []
        for period in ("30d", "12m"):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                response = client.get(f"{page}?site=demo&period={period}")
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (page, response.status_code)
            cells.append(f"{statistics.median(times) * 1000:8.0f} ms")
        print(f"{page:24s} {cells[0]:>10s} {cells[1]:>10s}")
    with app.app_context():
        db.engine.dispose()
    drop_database(NAME)


if __name__ == "__main__":
    main()
