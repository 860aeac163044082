"""The ingest suite marks a missed single-event target out of reach by the floors that bound an
ingest keeping the rollups at ingest, as ours does: the bare insert with our refresher running,
a commit per request or grouped; not by the bare insert without it."""

from __future__ import annotations

from bench import ingest
from bench.ingest import (
    BASELINE,
    BATCH_CHECKS_FLOOR,
    CHECKS_FLOOR,
    LEGACY_CHECKS_FLOORS,
    ROLLUPS_BATCH_FLOOR,
    ROLLUPS_FLOORS,
    Run,
    cases,
    floor,
    measured_again,
)
from bench.suites.ingest import _floor_ratio, _reach


def run(rate: float) -> Run:
    return Run(rate=rate, total=1, bad=0, p50=0.0, p99=0.0)


def found(**rates: float) -> dict:
    labels = {
        "flask": BASELINE,
        "alone": "bare insert, 1 event",
        "grouped": "bare insert, 1 event, group commit",
        "alone_rollups": ROLLUPS_FLOORS[0],
        "rollups": ROLLUPS_FLOORS[1],
        "checks": CHECKS_FLOOR,
    }
    return {"results": {labels[key]: run(rate) for key, rate in rates.items()}}


def test_the_reach_is_of_the_floors_with_the_refresher_not_without():
    # The morning suite of 2026-12-04 had the grouped floor at 0.64x: 0.6x was "in reach" by it.
    rates = found(flask=1000, alone=530, grouped=640, alone_rollups=410, rollups=440)
    assert _floor_ratio(rates) == 0.44


def test_a_commit_per_request_bounds_when_it_is_the_faster():
    assert _floor_ratio(found(flask=1000, grouped=640, alone_rollups=470, rollups=440)) == 0.47


def test_no_baseline_no_reach():
    assert _floor_ratio(found(alone_rollups=410, rollups=440)) is None


def test_every_floor_is_shown_beside_a_missed_target():
    shown = _reach(found(flask=1000, alone=530, grouped=640, alone_rollups=410, rollups=440))
    assert "0.53x a commit per request," in shown
    assert "0.64x grouped," in shown
    assert "0.41x a commit per request with the refresher" in shown
    assert "0.44x grouped with the refresher" in shown


def test_the_rollups_floors_run_the_refresher_and_are_measured_again_when_stalled():
    by_label = {case.label: case for case in cases("site", 1)}
    alone, grouped = (by_label[label] for label in ROLLUPS_FLOORS)
    assert alone.refresher and grouped.refresher
    assert measured_again(alone) and measured_again(grouped)
    assert "BARE_GROUP_COMMIT" not in alone.env and grouped.env["BARE_GROUP_COMMIT"] == "1"
    assert not alone.compare and not grouped.compare  # in CI's run too
    assert by_label["/api/events, 1 event"].refresher
    assert not by_label["bare insert, 1 event, group commit"].refresher
    assert not by_label[BASELINE].refresher


def test_the_p99_floors_keep_the_rollups_too():
    """The floor that marks a p99 target out of reach runs our refresher as ours does: the bare
    insert grouped for single events, its batches for batches; the floors without it are no
    longer paced."""
    todo = cases("site", 1)
    by_label = {case.label: case for case in todo}
    paced = {case.label: run(1.0) for case in todo if case.paced}
    assert by_label[ROLLUPS_BATCH_FLOOR].refresher and by_label[ROLLUPS_BATCH_FLOOR].per == 50
    del paced[BATCH_CHECKS_FLOOR]  # below: the one with the checks, where it was paced
    found_ = {"cases": todo, "paced": {label: (r, 0.8) for label, r in paced.items()}}
    assert floor(found_, by_label["/api/events, 1 event"])[0] == ROLLUPS_FLOORS[1]
    assert floor(found_, by_label["/api/events, 50-event batch"])[0] == ROLLUPS_BATCH_FLOOR
    assert not by_label["bare insert, 1 event"].paced
    assert not by_label["bare insert, 50-event batch"].paced


def test_the_batches_p99_floor_makes_the_checks_where_it_was_paced():
    """A 50-event batch is 50 events validated, hashed and looked up: the paced floor that does
    that too bounds ours; without it, the one that stores only, as before. Single events keep
    theirs (the checks floor of single events is not paced)."""
    todo = cases("site", 1)
    by_label = {case.label: case for case in todo}
    checks, plain = by_label[BATCH_CHECKS_FLOOR], by_label[ROLLUPS_BATCH_FLOOR]
    assert checks.env == plain.env | {"BARE_CHECKS": "1"}
    assert (checks.body, checks.per, checks.path) == (plain.body, 50, "/api/events")
    assert checks.paced and checks.refresher and not checks.compare and measured_again(checks)
    paced = {case.label: (run(1.0), 0.8) for case in todo if case.paced}
    found_ = {"cases": todo, "paced": paced}
    assert floor(found_, by_label["/api/events, 50-event batch"])[0] == BATCH_CHECKS_FLOOR
    assert floor(found_, by_label["/api/events, 1 event"])[0] == ROLLUPS_FLOORS[1]
    del paced[BATCH_CHECKS_FLOOR]
    assert floor(found_, by_label["/api/events, 50-event batch"])[0] == ROLLUPS_BATCH_FLOOR


def test_a_paced_floor_without_the_refresher_is_not_the_p99_floor():
    todo = cases("site", 1)
    by_label = {case.label: case for case in todo}
    plain = "bare insert, 1 event, group commit"
    found_ = {"cases": todo, "paced": {plain: (run(1.0), 0.8), ROLLUPS_FLOORS[1]: (run(2.0), 0.8)}}
    assert floor(found_, by_label["/api/events, 1 event"])[0] == ROLLUPS_FLOORS[1]
    assert floor({"cases": todo, "paced": {plain: (run(1.0), 0.8)}}, by_label[plain]) is None


def test_the_floor_with_the_checks_bounds_when_it_was_measured():
    """It does what every stored event needs, so it bounds ours more tightly than the floors
    that do less; without it, the bound is theirs as before."""
    rates = found(flask=1000, grouped=700, alone_rollups=410, rollups=620, checks=550)
    assert _floor_ratio(rates) == 0.55
    assert "0.55x grouped with the refresher and the checks" in _reach(rates)
    assert _floor_ratio(found(flask=1000, alone_rollups=410, rollups=620)) == 0.62


def test_each_contract_is_bounded_by_the_floor_with_its_own_checks():
    """`/api/events`' floor posts that endpoint's event through its checks; each legacy post's
    posts its body through its own. Where a contract's was not measured, the floors that do less
    bound it."""
    rates = found(flask=1000, alone_rollups=410, rollups=620, checks=550)
    rates["results"][LEGACY_CHECKS_FLOORS["/collector"]] = run(480)
    by_label = {case.label: case for case in cases("site", 1)}
    assert _floor_ratio(rates, by_label["/api/events, 1 event"]) == 0.55
    assert _floor_ratio(rates, by_label["/collector, 1 event"]) == 0.48
    assert "0.48x grouped with the refresher and the checks" in _reach(
        rates, by_label["/collector, 1 event"]
    )
    assert "0.55x" not in _reach(rates, by_label["/collector, 1 event"])
    for label in ("/benefits, 1 record", "/track, 1 event"):
        assert _floor_ratio(rates, by_label[label]) == 0.62


def test_the_legacy_floors_post_the_legacy_bodies_through_their_checks():
    by_label = {case.label: case for case in cases("site", 1)}
    grouped = by_label[ROLLUPS_FLOORS[1]]
    for path, label in LEGACY_CHECKS_FLOORS.items():
        floor_ = by_label[label]
        ours = next(c for c in by_label.values() if c.path == path and c.module == "wsgi:app")
        assert floor_.env == grouped.env | {"BARE_CHECKS": path.strip("/")}
        assert (floor_.path, floor_.body, floor_.content_type) == (
            ours.path,
            ours.body,
            ours.content_type,
        )
        assert floor_.refresher and measured_again(floor_) and not floor_.compare


def test_the_floor_with_the_checks_is_the_grouped_one_with_the_refresher_and_checks():
    by_label = {case.label: case for case in cases("site", 1)}
    checks, grouped = by_label[CHECKS_FLOOR], by_label[ROLLUPS_FLOORS[1]]
    assert checks.env == grouped.env | {"BARE_CHECKS": "1"}
    assert checks.body == grouped.body and checks.per == 1
    assert checks.refresher and measured_again(checks)
    assert not checks.compare  # in CI's run too


def test_the_legacy_run_is_the_legacy_posts_their_floors_and_bare_flask():
    chosen = {case.label for case in ingest.cases("pub", 1) if ingest.legacy_case(case)}
    assert chosen == {
        ingest.BASELINE,
        *ingest.LEGACY_CHECKS_FLOORS.values(),
        "/benefits, 1 record",
        "/collector, 1 event",
        "/track, 1 event",
    }


def test_the_single_run_is_the_single_events_their_floor_with_the_checks_and_bare_flask():
    chosen = ingest.select(ingest.cases("pub", 1), "single")
    assert [case.label for case in chosen] == [
        ingest.BASELINE,
        ingest.CHECKS_FLOOR,
        ingest.SINGLE,
    ]
    assert not any(case.paced for case in chosen)  # the p99 is the whole suite's
    ours = chosen[-1]
    assert ours.module == "wsgi:app" and ours.per == 1 and not ours.env


def test_each_selection_keeps_the_baseline_and_only_targets_leaves_the_comparisons_out():
    every = ingest.cases("pub", 1)
    for name in ingest.SELECTIONS:
        assert ingest.BASELINE in {case.label for case in ingest.select(every, name)}, name
    assert ingest.select(every, "all") == every
    assert ingest.select(every, "targets") == [case for case in every if not case.compare]
    legacy = ingest.select(every, "legacy")
    assert legacy == [case for case in every if ingest.legacy_case(case)]
    assert any(case.paced for case in legacy)  # bare Flask's p99 floor, as before
