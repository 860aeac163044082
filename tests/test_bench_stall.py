"""The ingest bench measures its bare Flask baseline again when a run of it stalled: a stalled
baseline inflated every ratio of CI's run on 2026-12-03 (single events "met" at 0.81x)."""

from __future__ import annotations

from bench.cpu import PARTS
from bench.ingest import BASELINE, Run, cases, measured_again, stalled


def parts(requests: float, wrk: float, idle: float) -> dict[str, float]:
    """CPU per request by part (us), as bench/cpu.py gives it."""
    return dict.fromkeys(PARTS, 0.0) | {"server: requests": requests, "wrk": wrk, "idle": idle}


# Bare Flask in two CI runs of 2026-12-03. The first: 240 us of request threads, 25 of wrk, 13
# idle. The third stalled at 2,236 requests/s: 894 us of both cores per request, 332 of them
# idle (how its 562 busy us split is not kept; here as the first run's shares).
NORMAL = parts(240, 25, 13)
STALLED = parts(511, 51, 332)


def run(cpu: dict[str, float] | None) -> Run:
    return Run(rate=1.0, total=1, bad=0, p50=0.0, p99=0.0, cpu=cpu)


def test_a_run_that_left_the_cores_idle_is_a_stall():
    assert stalled(run(STALLED))
    assert not stalled(run(NORMAL))


def test_a_run_without_cpu_figures_is_taken_as_it_is():
    assert not stalled(run(None))


def test_the_floors_are_measured_again_too_but_not_ours():
    """A stalled floor would mark a target out of reach that a normal one bounds nothing of."""
    found = {case.label: case for case in cases("site", 1)}
    assert measured_again(found[BASELINE])
    assert measured_again(found["bare insert, 1 event, group commit"])
    assert measured_again(found["bare insert, 1 event"])
    assert not measured_again(found["/api/events, 1 event"])
    assert not measured_again(found["/track, 1 event"])
