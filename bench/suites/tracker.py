"""The tracker's size as served (bench/tracker_size.py) against its budget."""

from __future__ import annotations

import argparse

from analytics.tracker import BUDGET
from bench.report import Table, count
from bench.tracker_size import gzipped_size


def run(args: argparse.Namespace) -> list[Table]:
    raw, packed = gzipped_size()
    table = Table("Tracker size", ["minified bytes", "gzipped bytes", "budget", "target"])
    table.add(
        count(raw),
        count(packed),
        count(BUDGET),
        f"<= {BUDGET:,} B: " + table.target("tracker within budget", packed <= BUDGET),
    )
    return [table]
