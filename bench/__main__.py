"""One entry point for the benchmarks: `python -m bench SUITE [options]` (or `make bench`).

Starts what it needs (the throw-away PostgreSQL unless BENCH_DATABASE_URL is set, gunicorn),
measures, prints a Markdown table per suite with each target `met` or `missed`, and stops what it
started, also on Ctrl-C or an error. The exit status is 0 whatever the figures, unless --strict
(then a missed target makes it 1): CI runs it without, so a noisy figure cannot fail a build.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import postgres  # noqa: E402
from bench.report import Table  # noqa: E402
from bench.serving import THREADS  # noqa: E402
from bench.suites import (  # noqa: E402
    dashboards,
    export,
    ingest,
    instructions,
    refresh,
    soak,
    tracker,
)

SUITES = {
    "tracker": tracker.run,
    "ingest": ingest.run,
    "export": export.run,
    "dashboards": dashboards.run,
    "soak": soak.run,
}
# Run by name only: valgrind is slow, and CI's machine has none; the refresher's cost alone is
# a figure to compare changes to the refresher by, beside the ingest suite's.
BY_NAME = {"instructions": instructions.run, "refresh": refresh.run}


def _sizes(value: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in value.split(",") if part.strip()]
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("sizes are numbers of events, at least 1000 each")
    return sorted(sizes)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=[*SUITES, *BY_NAME, "all"])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes("100000,1000000,10000000"),
        help="dashboards: events in the main site, comma-separated",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=20,
        help="dashboards: timed GETs per page and period (after 2 warm-ups)",
    )
    parser.add_argument(
        "--load-rounds",
        type=int,
        default=3,
        help="dashboards: loads timed per size up to 1 M (1 beyond)",
    )
    # CI's small run: a shorter history (every stored day is split at its refresh, which costs
    # about half a second a day whatever its size, so 395 days took most of CI's bench).
    parser.add_argument(
        "--days", type=int, default=395, help="dashboards: days the main site's events span"
    )
    # A 10 M database takes most of an hour to load and settle: keep it to time new code again.
    parser.add_argument(
        "--keep", action="store_true", help="dashboards: keep the database after the run"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="dashboards: time the database a --keep run kept (one size), instead of loading",
    )
    parser.add_argument("--rounds", type=int, default=3, help="ingest: interleaved rounds")
    # 20 s: each run spans two wakes of the rollup refresher (every 10 s), whose work is measured
    parser.add_argument("--ingest-seconds", type=int, default=20, help="ingest: seconds per run")
    # The server under test (our app and the bare baseline alike); default: `make run`'s.
    parser.add_argument("--ingest-workers", type=int, default=2, help="ingest: gunicorn workers")
    parser.add_argument(
        "--ingest-threads", type=int, default=THREADS, help="ingest: threads per worker"
    )
    parser.add_argument(
        "--ingest-worker-class", default="gthread", help="ingest: gunicorn worker class"
    )
    parser.add_argument(
        "--ingest-connections",
        type=int,
        default=None,
        help="ingest: wrk connections (default: one per request thread, workers x threads)",
    )
    parser.add_argument(
        "--ingest-cases",
        choices=["all", "targets", "legacy", "single"],
        default="all",
        help="ingest: every case, only those with a target and their baselines (CI's), only "
        "the legacy posts, their floors and bare Flask, or only the single events, their floor "
        "with the checks and bare Flask (these two for more rounds of them)",
    )
    parser.add_argument(
        "--soak-seconds", type=int, default=600, help="soak: seconds at 80 %% of the maximum rate"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.reuse and len(args.sizes) != 1:
        parser.error("--reuse times the one kept database: give one --sizes")
    if args.requests < 1 or args.load_rounds < 1 or args.rounds < 1:
        parser.error("--requests, --load-rounds and --rounds are at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A CI timeout sends SIGTERM: unwind through the same `finally` blocks as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = list(SUITES) if args.suite == "all" else [args.suite]
    tables: list[Table] = []
    took: dict[str, float] = {}  # minutes per suite: what CI's time goes to
    started = time.perf_counter()
    try:
        with postgres():
            for name in names:
                begun = time.perf_counter()
                found = (SUITES | BY_NAME)[name](args)
                took[name] = (time.perf_counter() - begun) / 60
                for table in found:
                    print("\n" + table.markdown(), flush=True)
                tables += found
    except KeyboardInterrupt:
        print("interrupted: stopped what was started", file=sys.stderr)
        return 130
    missed = [what for table in tables for what in table.missed]
    minutes = (time.perf_counter() - started) / 60
    each = ", ".join(f"{name} {spent:.1f}" for name, spent in took.items())
    print(f"{len(names)} suite(s) in {minutes:.1f} min ({each}); targets missed: {len(missed)}")
    for what in missed:
        print(f"  missed: {what}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
