"""Instructions per single-event request in one process (bench/instructions.py): ours (and each
legacy post) against the bare Flask endpoint and against the floor, in a unit that does not move
with the machine.
Not part of `all` (about 10 minutes under valgrind, and CI's machine has none):
`python -m bench instructions`, or `make bench BENCH_SUITE=instructions`."""

from __future__ import annotations

import argparse
import os

from bench import ingest, instructions
from bench.database import drop_database, fresh_database
from bench.report import Table, count

DATABASE = "analytics_bench_instructions"
LABELS = {
    "bare": "bare Flask endpoint (parses the JSON)",
    "floor": "bare insert (parse, INSERT, commit; no framework)",
    "ours": "`POST /api/events`",
    "benefits": "`POST /benefits`, one record",
    "collector": "`POST /collector`, one event",
    "track": "`POST /track`, one event",
}


def run(args: argparse.Namespace) -> list[Table]:
    table = Table(
        "Instructions per single-event request, in one process (valgrind)",
        ["app", "instructions", "x bare Flask", "x the floor"],
    )
    if not instructions.available():
        table.notes.append("Not measured: valgrind is not installed (apt-get install valgrind).")
        return [table]
    print(f"instructions: valgrind, {len(instructions.APPS)} apps x 2 runs ...", flush=True)
    url = fresh_database(DATABASE)
    try:
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench", PYTHONPATH=str(ingest.ROOT))
        public_id, site_id = ingest._setup(url, env)
        env |= {"BENCH_SITE_ID": str(site_id), "BENCH_PUBLIC_ID": public_id}
        found = {name: instructions.per_request(name, env) for name in instructions.APPS}
    finally:
        drop_database(DATABASE)
    for name in instructions.APPS:
        table.add(
            LABELS[name],
            count(found[name]),
            f"{found[name] / found['bare']:.2f}",
            f"{found[name] / found['floor']:.2f}",
        )
    table.notes.append(
        "In-process: no gunicorn, no threads, nor the database server's work or the kernel's. "
        "The ingest suite measures those, in time."
    )
    return [table]
