"""Ingest throughput (bench/ingest.py) against its ratios of today: it must not get slower; and
the rollup lag meanwhile (bench/freshness.py): at most 60 s under a steady load."""

from __future__ import annotations

import argparse

from bench import ingest
from bench.database import drop_database
from bench.report import Table, count

SINGLE_TARGET, BATCH_TARGET = 0.23, 0.53  # measured when the write path was last changed
LAG_TARGET = 60.0  # seconds the oldest change may wait for the rollups


def run(args: argparse.Namespace) -> list[Table]:
    print("ingest: wrk against gunicorn ...", flush=True)
    try:
        found = ingest.measure(seconds=args.ingest_seconds, rounds=args.rounds)
    finally:
        drop_database("analytics_bench")
    table = Table(
        "Ingest: `POST /api/events` under gunicorn",
        ["configuration", "req/s", "events/s", "non-2xx", "ratio", "rollup lag", "target"],
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
        table.add(label, count(rate), count(rate * per), bad, ratio, "-", target)
    table.add(
        "bare psycopg executemany, 100-row batches",
        "-",
        count(found["executemany_rate"]),
        "-",
        "-",
        "-",
        "-",
    )
    for kind, lag in found["freshness"].items():
        drained = ", ".join("not after 90" if s is None else f"{s:.0f}" for s in lag["drained_in"])
        table.add(
            f"analytics, {kind}: rollup freshness",
            "-",
            "-",
            "-",
            "-",
            f"max {lag['max']:.0f} s, median {lag['median']:.0f} s under load; queue empty "
            f"{drained} s after each run",
            f"max lag <= {LAG_TARGET:.0f} s: "
            + table.target(f"rollup lag under {kind} ingest", lag["max"] <= LAG_TARGET),
        )
    rounds = [
        f"{kind}: {len(lag['rounds'])} rounds, longest {max(lag['rounds'], default=0):.1f} s, "
        "last of each run " + ", ".join(f"{s:.1f} s at {n:,} events" for s, n in lag["last_rounds"])
        for kind, lag in found["freshness"].items()
    ]
    kept = found["stored"] >= found["acknowledged"]
    table.notes.append(
        f"{found['settings']}. Every 2xx stored: {found['acknowledged']:,} answered, "
        f"{found['stored']:,} rows: " + table.target("every acknowledged event stored", kept)
    )
    table.notes.append(
        "Rollup lag: now - oldest `rollup_queue.queued_at`, sampled every second from the first "
        "post (warm-up included) and, after the load, until the queue is empty; the max counts "
        "both. Refresh rounds (from `rollup_leases` stamps; every event is today's, so each "
        "round recomputes today, and the database keeps the events of earlier runs): "
        + "; ".join(rounds)
        + "."
    )
    return [table]
