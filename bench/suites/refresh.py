"""The rollup refresher's cost per event it counts (bench/refresh_cost.py), beside the database's
cost of storing the same events: the part of ingest that keeps the dashboards' rollups.
Not part of `all` (CI's run measures the refresher under load, in the ingest suite):
`python -m bench refresh`, or `make bench BENCH_SUITE=refresh`."""

from __future__ import annotations

import argparse

from bench import refresh_cost
from bench.report import Table


def run(args: argparse.Namespace) -> list[Table]:
    print("refresh: one day, a refresher round per batch of added events ...", flush=True)
    rounds = refresh_cost.measure()
    table = Table(
        "Rollup refresher: CPU per event counted, one round per 35,000 events added",
        [
            "round", "day's events", "wall", "refresher (Python) us/event",
            "its database backend us/event", "storing them, database us/event",
            "refresher / storing",
        ],
    )  # fmt: skip
    for n, found in enumerate(rounds):
        refresher = found.python_us + found.database_us
        table.add(
            "first build (whole day)" if found.whole else f"recount of added rows {n}",
            f"{found.day:,}",
            f"{found.wall:.2f} s",
            f"{found.python_us:.1f}",
            f"{found.database_us:.1f}",
            f"{found.store_us:.1f}",
            f"{refresher / found.store_us:.2f}",
        )
    table.notes.append(
        "Nothing else runs. Every event is a visitor and a visit of its own (as in the ingest "
        "suite), the refresher's dearest case: two presence rows and two touched keys each."
    )
    return [table]
