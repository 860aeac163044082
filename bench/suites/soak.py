"""Soak (bench/soak.py): minutes of ingest at 80 % of the maximum rate, dashboards read meanwhile.

Targets: no error at all, p99 under 50 ms, every event answered 2xx stored, and the workers'
memory at the end within 10 % of what it was a minute in.
"""

from __future__ import annotations

import argparse

from bench.database import drop_database
from bench.report import Table, count

P99_TARGET = 0.050  # seconds
GROWTH_TARGET = 0.10  # of the workers' memory, from a minute in to the end


def run(args: argparse.Namespace) -> list[Table]:
    from bench import soak

    print(f"soak: {args.soak_seconds} s at 80 % of the maximum ingest rate ...", flush=True)
    try:
        found = soak.run(args.soak_seconds)
    finally:
        drop_database(soak.DATABASE)
    table = Table(
        f"Soak: {found.seconds} s of single events at 80 % of the maximum rate, dashboards read "
        "meanwhile",
        ["measure", "figure", "target"],
    )
    errors = found.non_2xx + found.socket_errors + found.read_errors
    table.add(
        "ingest rate (maximum measured first)",
        f"{count(found.rate)} events/s paced at {count(found.target_rate)} "
        f"(maximum {count(found.max_rate)})",
        "-",
    )
    table.add(
        "errors: ingest non-2xx, socket errors, dashboard reads not 200",
        f"{errors} ({found.non_2xx}, {found.socket_errors}, {found.read_errors} of "
        f"{found.reads} reads)",
        "0: " + table.target("soak: no error", errors == 0),
    )
    table.add(
        "ingest p50 / p99",
        f"{found.p50 * 1000:.1f} / {found.p99 * 1000:.1f} ms",
        "p99 < 50 ms: " + table.target("soak: p99 < 50 ms", found.p99 < P99_TARGET),
    )
    table.add("dashboard reads p95", f"{found.read_p95 * 1000:.0f} ms", "-")
    table.add(
        "events the server answered 2xx (its access log) / rows stored",
        f"{count(found.server_answered)} / {count(found.stored)}",
        "equal: "
        + table.target("soak: answered equals stored", found.server_answered == found.stored),
    )
    received = found.answered <= found.stored <= found.answered + found.in_flight
    table.add(
        "of which wrk received the answer",
        f"{count(found.answered)}",
        f"the rest were in flight when a wrk run stopped (at most {found.in_flight}): "
        + table.target("soak: every answer wrk saw is stored", received),
    )
    growth = (found.rss_end - found.rss_early) / found.rss_early if found.rss_early else 0.0
    table.add(
        f"workers' memory at {found.early_at} s / at the end",
        f"{found.rss_early / 2**20:.0f} / {found.rss_end / 2**20:.0f} MB ({growth:+.1%})",
        "< 10 % growth: " + table.target("soak: memory growth < 10 %", growth < GROWTH_TARGET),
    )
    return [table]
