"""Ingest throughput (bench/ingest.py) against its ratios of today: it must not get slower."""

from __future__ import annotations

import argparse

from bench import ingest
from bench.database import drop_database
from bench.report import Table, count

SINGLE_TARGET, BATCH_TARGET = 0.23, 0.53  # measured when the write path was last changed


def run(args: argparse.Namespace) -> list[Table]:
    print("ingest: wrk against gunicorn ...", flush=True)
    try:
        found = ingest.measure(seconds=args.ingest_seconds, rounds=args.rounds)
    finally:
        drop_database("analytics_bench")
    table = Table(
        "Ingest: `POST /api/events` under gunicorn",
        ["configuration", "req/s", "events/s", "non-2xx", "ratio", "target"],
    )
    results, ratios = found["results"], found["ratios"]
    for label, (rate, _total, bad) in results.items():
        per = 100 if "batch" in label else 1
        ratio = target = "-"
        if label == "analytics, 1 event":
            ratio = f"{ratios['1 event']:.2f}x bare Flask"
            target = f">= {SINGLE_TARGET}x: " + table.target(
                "single events vs bare Flask", ratios["1 event"] >= SINGLE_TARGET
            )
        elif label == "analytics, 100-event batch":
            ratio = f"{found['batch_ratio']:.2f}x bare executemany"
            target = f">= {BATCH_TARGET}x: " + table.target(
                "batches vs bare executemany", found["batch_ratio"] >= BATCH_TARGET
            )
        table.add(label, count(rate), count(rate * per), bad, ratio, target)
    table.add(
        "bare psycopg executemany, 100-row batches",
        "-",
        count(found["executemany_rate"]),
        "-",
        "-",
        "-",
    )
    kept = found["stored"] >= found["acknowledged"]
    table.notes.append(
        f"{found['settings']}. Every 2xx stored: {found['acknowledged']:,} answered, "
        f"{found['stored']:,} rows: " + table.target("every acknowledged event stored", kept)
    )
    return [table]
