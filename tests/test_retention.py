"""Retention (`flask purge`): raw events past a site's retention go, the retained period's
dashboards do not move, and the purged period's aggregates stay (unless --rollups)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import stats
from analytics.extensions import db
from analytics.ingest.writer import event_row, store_events
from analytics.models import (
    Event,
    EventError,
    RollupPresence,
    RollupQueue,
    RollupSpanEvent,
    Site,
    utcnow,
)
from analytics.retention import months_before, purge
from analytics.rollups import refresh as rollups

from .accounts import logged_in
from .conftest import count
from .test_rollups import OVERVIEW, Period

TODAY = dt.date(2026, 6, 15)
KEPT_FROM = dt.datetime(2026, 4, 15)  # 2 months of retention


def test_months_before_clamps_to_the_shorter_month():
    assert months_before(dt.date(2026, 6, 15), 2) == dt.date(2026, 4, 15)
    assert months_before(dt.date(2026, 3, 31), 1) == dt.date(2026, 2, 28)
    assert months_before(dt.date(2026, 1, 10), 13) == dt.date(2024, 12, 10)


def _visit(site: Site, day: dt.datetime, n: int, visitor: str | None = None) -> list[dict]:
    """A visit of three events within the day: a page view, a scroll, another page view."""
    at = day + dt.timedelta(hours=9, minutes=n)
    session = f"s{day:%m%d}-{n}"
    common = {
        "site_id": site.id,
        "session_id": session,
        "visitor_id": visitor or session,
        "browser": "Firefox",
        "os": "Linux",
        "device": "desktop",
        "source": "tracker",
    }
    return [
        event_row(occurred_at=at, name="pageview", path="/", referrer="https://t.co/x", **common),
        event_row(occurred_at=at + dt.timedelta(seconds=20), name="scroll", path="/", **common),
        event_row(occurred_at=at + dt.timedelta(seconds=50), name="pageview", path="/b", **common),
    ]


@pytest.fixture
def history(app, make_site) -> Site:
    """Visits from March to June; one visitor comes back on two purged days."""
    site = make_site()
    site.retention_months = 2
    db.session.commit()
    rows: list[dict] = []
    day = dt.datetime(2026, 3, 1)
    while day.date() <= TODAY:
        for n in range(1 + day.day % 3):
            rows += _visit(site, day, n)
        day += dt.timedelta(days=1)
    rows += _visit(site, dt.datetime(2026, 3, 10), 7, visitor="returning")
    rows += _visit(site, dt.datetime(2026, 3, 11), 7, visitor="returning")
    store_events(rows)
    rollups.refresh(max_rounds=50)
    assert count(RollupQueue) == 0
    return site


def _answers(site: Site, start: dt.datetime, end: dt.datetime) -> dict[str, pd.DataFrame]:
    db.session.expire_all()
    period = Period(site, start, end, "day")
    return {name: fn(period).reset_index(drop=True) for name, fn in OVERVIEW.items()}


def _summary(site: Site, start: dt.datetime, end: dt.datetime) -> dict[str, object]:
    db.session.expire_all()
    df = stats.overview_summary(Period(site, start, end, "day"))
    return dict(zip(df["metric"], df["value"], strict=True))


def test_purge_removes_old_raw_data_and_keeps_the_dashboards(history: Site) -> None:
    site = history
    retained = (KEPT_FROM, dt.datetime(2026, 6, 16))
    purged = (dt.datetime(2026, 3, 1), KEPT_FROM)
    before_kept = _answers(site, *retained)
    before_old = _summary(site, *purged)
    old_events = count(Event)

    report = purge(today=TODAY)

    [done] = report.sites
    assert done.kept_from == KEPT_FROM.date()
    assert done.days == 45 and done.events > 0
    with db.engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(Event.occurred_at))).scalar_one()
        for model in (RollupSpanEvent, RollupPresence):
            left = conn.execute(
                sa.select(sa.func.count()).where(model.day < KEPT_FROM.date())
            ).scalar_one()
            assert left == 0, f"{model.__tablename__} keeps raw data of purged days"
    assert oldest >= KEPT_FROM
    assert count(Event) == old_events - done.events
    assert count(RollupQueue) == 0, "nothing was left to recount"

    # The retained period reads exactly as before, every card of every page (the summary's
    # comparison with the period before is of purged days: checked below).
    after_kept = _answers(site, *retained)
    for name, frame in before_kept.items():
        if name == "summary":
            frame, after_kept[name] = (
                df.drop(columns=["previous", "change_pct"]) for df in (frame, after_kept[name])
            )
        pd.testing.assert_frame_equal(after_kept[name], frame, check_dtype=False, obj=name)
    # The purged period keeps its aggregates: events, visits and page views exactly; the one
    # visitor seen on two purged days now counts once on each.
    after_old = _summary(site, *purged)
    for metric in ("visits", "pageviews", "bounce_rate", "avg_visit_seconds"):
        assert after_old[metric] == before_old[metric], metric
    assert after_old["visitors"] == before_old["visitors"] + 1

    again = purge(today=TODAY)
    assert (again.sites[0].days, again.sites[0].events) == (0, 0), "idempotent"


def test_purge_with_rollups_removes_the_aggregates_too(history: Site) -> None:
    purge(today=TODAY, rollups=True)
    old = _summary(history, dt.datetime(2026, 3, 1), KEPT_FROM)
    assert (old["visitors"], old["visits"], old["pageviews"]) == (0, 0, 0)
    assert _summary(history, KEPT_FROM, dt.datetime(2026, 6, 16))["pageviews"] > 0


def test_event_errors_have_their_own_shorter_retention(app) -> None:
    now = utcnow()
    for age in (45, 31, 29, 1):
        db.session.add(
            EventError(
                endpoint="/api/events",
                reason=f"{age} days old",
                received_at=now - dt.timedelta(days=age),
            )
        )
    db.session.commit()
    report = purge(errors_days=30)
    assert report.errors == 2
    reasons = sorted(db.session.execute(sa.select(EventError.reason)).scalars())
    assert reasons == ["1 days old", "29 days old"]


def test_purge_command_prints_what_it_removed(app, make_site, runner) -> None:
    site = make_site()
    site.retention_months = 2
    db.session.commit()
    today = dt.datetime.combine(utcnow().date(), dt.time())
    old, recent = today - dt.timedelta(days=100), today - dt.timedelta(days=3)
    store_events(_visit(site, old, 1) + _visit(site, recent, 1))
    rollups.refresh()
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert f"site {site.public_id}: kept from" in result.output
    assert "removed 1 days, 3 events" in result.output
    assert "aggregates kept" in result.output
    assert "event_errors: removed 0" in result.output
    assert count(Event) == 3
    again = runner.invoke(args=["purge", "--site", site.public_id])
    assert "removed 0 days, 0 events" in again.output
    assert runner.invoke(args=["purge", "--site", "nope"]).exit_code != 0


def test_retention_is_set_by_the_cli_and_in_settings(app, runner, client) -> None:
    result = runner.invoke(args=["sites", "create", "Blog", "--retention-months", "6"])
    assert result.exit_code == 0, result.output
    site = db.session.execute(sa.select(Site).where(Site.name == "Blog")).scalar_one()
    assert site.retention_months == 6
    default = runner.invoke(args=["sites", "create", "Shop"])
    shop = db.session.execute(sa.select(Site).where(Site.name == "Shop")).scalar_one()
    assert default.exit_code == 0 and shop.retention_months == 13
    assert runner.invoke(args=["sites", "create", "X", "--retention-months", "0"]).exit_code != 0

    logged_in(client)
    res = client.post(f"/settings/sites/{site.id}/retention", data={"retention_months": "25"})
    assert res.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(Site, site.id).retention_months == 25
    client.post(f"/settings/sites/{site.id}/retention", data={"retention_months": "-3"})
    db.session.expire_all()
    assert db.session.get(Site, site.id).retention_months == 25, "refused"
    page = client.get("/settings").get_data(as_text=True)
    assert 'name="retention_months"' in page and 'value="25"' in page
