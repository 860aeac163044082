"""Ingest throughput and latency of every ingest endpoint (bench/ingest.py) against same-run
baselines, in a gunicorn configuration given on the command line; and the rollup lag meanwhile
(bench/freshness.py): at most 60 s under a steady load. The p99 target at 80 % of the maximum rate
is shown next to its floor: the bare insert endpoint (bench/bare_insert_app.py: a bare WSGI app
that parses, INSERTs and commits, nothing else) with our rollup refresher running over its rows
as over ours, paced at 80 % of its own maximum. The bare insert is the floor of the single-event
ratios too: a target it misses with the refresher, a commit per request and grouped, is marked
out of reach; and, for each ingest contract (`/api/events` and the legacy posts) when it was
measured, a target that the grouped one with the refresher misses while it also runs every event
through the checks this product must make of that contract's events (validation, site and
Origin, visitor hash, user agent, country, the collector's category: `_floor_ratio`), and that
ours does not beat."""

from __future__ import annotations

import argparse

from bench import cpu, ingest
from bench.database import drop_database
from bench.report import Table, count

SINGLE_TARGET = 0.6  # /api/events single events vs the bare Flask endpoint
BATCH_TARGET = 0.8  # /api/events 50-event batches vs bare executemany of the same rows
LEGACY_TARGET = 0.5  # /benefits, /collector, /track single posts vs the bare Flask endpoint
P99_TARGET = 0.050  # seconds, at 80 % of the maximum rate
LAG_TARGET = 60.0  # seconds the oldest change may wait for the rollups


def _target(case: ingest.Case) -> float | None:
    if case.module != "wsgi:app" or case.env or case.lag:
        return None  # baselines, the group-commit-off comparison and the lag-sampled runs
    if case.path != "/api/events":
        return LEGACY_TARGET
    return BATCH_TARGET if case.per > 1 else SINGLE_TARGET


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def run(args: argparse.Namespace) -> list[Table]:
    print("ingest: wrk against gunicorn ...", flush=True)
    server = ingest.Gunicorn(args.ingest_workers, args.ingest_threads, args.ingest_worker_class)
    try:
        found = ingest.measure(
            seconds=args.ingest_seconds,
            connections=args.ingest_connections,
            server=server,
            rounds=args.rounds,
            selection=args.ingest_cases,
        )
    finally:
        drop_database(ingest.DATABASE)
    table = Table(
        "Ingest under gunicorn: every endpoint against same-run baselines",
        ["configuration", "req/s", "events/s", "p50 ms", "p99 ms", "non-2xx", "ratio", "target"],
    )
    for case in found["cases"]:
        run_ = found["results"][case.label]
        against = ingest.ratio(found, case)
        ratio = f"{against[0]:.2f}x {against[1]}" if against else "-"
        target = "-"
        goal = _target(case)
        if goal is not None and against:
            met = against[0] >= goal
            reach = _floor_ratio(found, case) if case.per == 1 else None
            # Out of reach only where the floor bounds ours: an app that beats it was not held
            # back by what the floor does.
            out = not met and reach is not None and reach < goal and against[0] <= reach
            target = f">= {goal}x: " + table.target(case.label, met, out)
            if not met and reach is not None:
                target += _reach(found, case)
        table.add(
            case.label,
            count(run_.rate),
            count(run_.rate * case.per),
            _ms(run_.p50),
            _ms(run_.p99),
            run_.bad,
            ratio,
            target,
        )
    by_label = {case.label: case for case in found["cases"]}
    for label, (run_, target_rate) in found["paced"].items():
        case = by_label[label]
        share = run_.rate / (target_rate / ingest.PACED)
        ratio, target = "-", "-"
        if case.module == "wsgi:app":
            floor = ingest.floor(found, case)
            out = floor is not None and floor[1].p99 >= P99_TARGET
            target = f"p99 < {P99_TARGET * 1000:.0f} ms: " + table.target(
                f"p99 at 80 % of max, {label}", run_.p99 < P99_TARGET, out
            )
            if floor:
                ratio = f"p99 {run_.p99 / floor[1].p99:.1f}x floor"
                target += f"; floor ({floor[0]}, at 80 % of its max) p99 {_ms(floor[1].p99)} ms"
        table.add(
            f"{label}, paced ({share:.0%} of max)",
            count(run_.rate),
            count(run_.rate * case.per),
            _ms(run_.p50),
            _ms(run_.p99),
            run_.bad,
            ratio,
            target,
        )
    for form in ("executemany", "json"):
        rate = found[f"{form}_rate"]
        table.add(f"bare psycopg {form}, {ingest.BATCH}-row batches", "-", count(rate),
                  "-", "-", "-", "-", "-")  # fmt: skip
    for kind, lag in found["freshness"].items():
        drained = ", ".join("not after 90" if s is None else f"{s:.0f}" for s in lag["drained_in"])
        table.add(
            f"/api/events, {kind}: rollup freshness",
            "-",
            "-",
            "-",
            "-",
            "-",
            f"lag max {lag['max']:.0f} s, median {lag['median']:.0f} s; queue empty "
            f"{drained} s after each run",
            f"max lag <= {LAG_TARGET:.0f} s: "
            + table.target(f"rollup lag under {kind} ingest", lag["max"] <= LAG_TARGET),
        )
    if note := _floor_note(found):
        table.notes.append(note)
    table.notes.append(_commit_note(found))
    if found["stalls"]:
        table.notes.append(
            f"Baseline runs that stalled (idle over {ingest.STALL_IDLE:.0%} of both cores) and "
            "were measured again: "
            + "; ".join(
                f"{label}, {r.rate:,.0f} req/s, {r.cpu['idle'] / sum(r.cpu.values()):.0%} idle"
                for label, r in found["stalls"]
            )
            + ". The ratios and their floors are of the runs that did not stall."
        )
    lost = ingest.missing(found)
    table.notes.append(
        f"{found['settings']}. Every 2xx stored (per source, answered / rows): "
        + ", ".join(
            f"{source} {answered:,} / {found['stored'].get(source, 0):,}"
            for source, answered in found["acknowledged"].items()
        )
        + ": "
        + table.target("every acknowledged event stored", not lost)
    )
    return [table, cpu_table(found)]


# The bare insert's single-event cases, and what each does beside parse, INSERT and commit.
FLOORS = {
    "bare insert, 1 event": "a commit per request",
    "bare insert, 1 event, group commit": "grouped",
    ingest.ROLLUPS_FLOORS[0]: "a commit per request with the refresher",
    ingest.ROLLUPS_FLOORS[1]: "grouped with the refresher",
    ingest.CHECKS_FLOOR: "grouped with the refresher and the checks",
}


def _checks_floor(case: ingest.Case | None) -> str | None:
    """The floor with the checks of `case`'s contract (`POST /api/events` when none is given),
    if the suite has one."""
    path = "/api/events" if case is None else case.path
    return ingest.CHECKS_FLOOR if path == "/api/events" else ingest.LEGACY_CHECKS_FLOORS.get(path)


def _floor_ratio(found: dict, case: ingest.Case | None = None) -> float | None:
    """The single-event ratio to bare Flask that bounds `case`: the floor with the checks of its
    contract when it was measured (`POST /api/events`, `/benefits`, `/collector`, `/track`: each
    posts that contract's body through that contract's checks); else the better of the two
    floors with our refresher.

    Those two: parse, INSERT and a synchronous commit with nothing else, in a bare WSGI app (our
    ingest path does all that and more, and skips Flask too), a commit per request or grouped,
    with the rollups refreshed as ours are (the issue puts them on the measured path when kept
    at ingest, as ours are): the most that an ingest that stores before answering, and keeps
    the rollups, reaches in this configuration, whichever way it commits. The grouped one with
    the checks (ingest.CHECKS_FLOOR; for the legacy posts, ingest.LEGACY_CHECKS_FLOORS) does,
    besides, what the product must do for every event it stores (the issue: every event
    validated; unknown sites and origins refused; visitors counted without storing an address;
    browsers, devices and countries shown), by the app's own functions, with none of the rest
    of our path (JSON answers, the error table, the rate limit, Flask's app context): the most
    that this product's ingest reaches."""
    results = found["results"]
    flask = results.get(ingest.BASELINE)
    if not flask:
        return None
    checks = _checks_floor(case)
    if checks in results:
        return results[checks].rate / flask.rate
    rates = [results[label].rate for label in ingest.ROLLUPS_FLOORS if label in results]
    return max(rates) / flask.rate if rates else None


def _reach(found: dict, case: ingest.Case | None = None) -> str:
    """The bare insert's ratios beside a missed single-event target: the floors of every
    contract, and the one with the checks of `case`'s."""
    results = found["results"]
    flask = results[ingest.BASELINE].rate
    floors = {label: kind for label, kind in FLOORS.items() if label != ingest.CHECKS_FLOOR}
    checks = _checks_floor(case)
    if checks:
        floors[checks] = FLOORS[ingest.CHECKS_FLOOR]
    shown = [
        f"{results[label].rate / flask:.2f}x {kind}"
        for label, kind in floors.items()
        if label in results
    ]
    return "; the bare insert: " + ", ".join(shown)


def _commit_note(found: dict) -> str:
    """What a commit per request allows here: the bare insert's single events against bare
    Flask; ours against both. Nothing when the comparison cases were left out."""
    results = found["results"]
    if "/api/events, 1 event, group commit off" not in results:
        return "The comparison cases were left out (--ingest-cases targets, legacy or single)."
    flask = results[ingest.BASELINE].rate
    bare = results["bare insert, 1 event"].rate
    ours = results[ingest.SINGLE].rate
    alone = results["/api/events, 1 event, group commit off"].rate
    grouped = results["bare insert, 1 event, group commit"].rate
    parse = results.get("bare WSGI, 1 event, parse only")
    http = (
        f"The bare WSGI app that only parses (gunicorn's HTTP handling without Flask) ran at "
        f"{parse.rate / flask:.2f}x bare Flask. "
        if parse
        else ""
    )
    return http + (
        f"A commit per request: the bare insert's single events ran at {bare / flask:.2f}x bare "
        f"Flask; /api/events without group commit at {alone / flask:.2f}x, {alone / bare:.2f}x "
        f"the bare insert. With group commit (the default: a commit per group of concurrent "
        f"requests): the bare insert at {grouped / flask:.2f}x bare Flask; /api/events at "
        f"{ours / flask:.2f}x bare Flask, {ours / grouped:.2f}x the bare insert grouped alike, "
        f"{ours / alone:.2f}x itself without group commit."
    )


def _floor_note(found: dict) -> str:
    """Whether the floor itself meets the p99 target, per case: where it does not, no ingest
    into `events` meets it on this machine, and ours/floor is the figure to quote."""
    parts = []
    for case in found["cases"]:
        floor = ingest.floor(found, case) if case.module == "wsgi:app" else None
        if not floor or case.label not in found["paced"]:
            continue
        ours = found["paced"][case.label][0]
        if floor[1].p99 < P99_TARGET:
            verdict = "meets it: the target is within this machine's reach"
        else:
            verdict = "misses it: the target is out of reach on this machine"
        parts.append(
            f"{case.label}: floor ({floor[0]}) p99 {_ms(floor[1].p99)} ms {verdict}; ours/floor "
            f"{ours.p99 / floor[1].p99:.1f}x"
        )
    if not parts:
        return ""  # no paced run of ours (--ingest-cases legacy or single)
    return (
        f"p99 floor (the bare insert, a bare WSGI app: parse the JSON, INSERT into `events` on "
        f"a plain psycopg connection, grouped as ours in one statement prepared as ours, a batch "
        f"by one statement over a JSON array, synchronous COMMIT, 204, with our rollup refresher "
        f"running over its rows; for batches, where measured, also making the checks every "
        f"stored event passes; same gunicorn, paced at "
        f"{ingest.PACED * 100:.0f} % of its own maximum) against {P99_TARGET * 1000:.0f} ms. "
        + "; ".join(parts)
        + "."
    )


def cpu_table(found: dict) -> Table:
    """CPU per event of each part, in the steady middle of each run (the median one)."""
    table = Table(
        "Where the CPU goes: microseconds of CPU per event, by part (2 cores: 2,000,000 us/s)",
        ["configuration", "events/s", *cpu.PARTS, "busy"],
    )
    for case in found["cases"]:
        run_ = found["results"][case.label]
        if not run_.cpu:
            continue
        busy = sum(us for part, us in run_.cpu.items() if part != "idle")
        table.add(
            case.label,
            count(run_.rate * case.per),
            *(f"{run_.cpu[part]:.0f}" for part in cpu.PARTS),
            f"{busy:.0f}",
        )
    table.notes.append(
        "From /proc, over each run but its first and last second. server: the gunicorn "
        "processes' request threads (Python: HTTP, Flask or the direct ingest path, validation, "
        "psycopg's client side) and, apart, the rollup refresher thread; PostgreSQL: backends "
        "(the INSERTs, their triggers, the refresher's queries) and background processes (WAL "
        "writer, checkpointer, autovacuum); idle: both cores' idle time."
    )
    return table
