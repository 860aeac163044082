"""The raw CSV export of a million rows: speed and memory, from `bench.export.run`."""

from __future__ import annotations

import argparse

from bench.report import Table, count

RATE_TARGET, MEMORY_TARGET = 100_000, 200  # rows/s, MB of peak RSS
ROWS = 1_000_000


def run(args: argparse.Namespace) -> list[Table]:
    table = Table(
        f"Export: `/export/events.csv` of {ROWS:,} rows",
        ["rows", "seconds", "rows/s", "peak RSS MB", "targets"],
    )
    from bench import export

    measure = getattr(export, "run", None)
    if measure is None:
        # The export work exposes run(rows) -> dict in bench/export.py on its own branch.
        table.add("-", "-", "-", "-", table.target("bench.export.run exists", False))
        table.notes.append(
            "bench/export.py has no `run(rows) -> dict` (rows, seconds, rows_per_s, peak_rss_mb) "
            "in this branch yet: the export suite cannot measure."
        )
        return [table]
    print(f"export: {ROWS:,} rows ...", flush=True)
    found = measure(rows=ROWS)
    rate = table.target(f"export >= {RATE_TARGET:,} rows/s", found["rows_per_s"] >= RATE_TARGET)
    memory = table.target(f"export < {MEMORY_TARGET} MB", found["peak_rss_mb"] < MEMORY_TARGET)
    table.add(
        count(found["rows"]),
        f"{found['seconds']:.1f}",
        count(found["rows_per_s"]),
        f"{found['peak_rss_mb']:.0f}",
        f">= {RATE_TARGET:,} rows/s: {rate}; < {MEMORY_TARGET} MB: {memory}",
    )
    return [table]
