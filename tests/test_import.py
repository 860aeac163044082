"""`flask --app wsgi import`: each old format, original times, rejections by line, idempotency."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.importer import import_file, site_for_import
from analytics.models import Event, EventError
from tests.conftest import count

DATA = Path(__file__).parent / "data"


def run(runner, fmt: str, name: str, *extra: str):
    result = runner.invoke(args=["import", "--from", fmt, str(DATA / name), *extra])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def events(source: str) -> list[Event]:
    query = sa.select(Event).where(Event.source == source).order_by(Event.occurred_at)
    return list(db.session.execute(query).scalars())


def reasons(endpoint: str) -> list[str]:
    query = sa.select(EventError.reason).where(EventError.endpoint == endpoint)
    return sorted(db.session.execute(query.order_by(EventError.id)).scalars())


def test_recorder_json_array(runner, client):
    line = run(runner, "recorder", "recorder.json")
    assert line == "imported 3 rows, skipped 0 duplicates, rejected 1 rows"
    oid_dated, first, second = events("benefits")
    assert oid_dated.occurred_at == dt.datetime(2020, 7, 26, 12, 42, 19)  # from the ObjectId
    assert oid_dated.schema_version == 1  # no version: pre-versioning, left out of /statistics
    assert first.occurred_at == dt.datetime(2023, 7, 19, 14, 12, 50, 123000)
    assert (first.name, first.item_id, first.item_position, first.list_size) == (
        "show",
        "RSA",
        1,
        3,
    )
    assert second.occurred_at == dt.datetime(2023, 7, 19, 14, 12, 50, 123000)
    assert (second.item_position, second.schema_version) == (2, 2)
    assert second.props == {
        "group_id": "64b7f0c2a1b2c3d4e5f60000",
        "abtesting": {"aides_locales": "B"},
    }
    assert first.props["group_id"] == second.props["group_id"]
    [reason] = reasons("import:recorder")
    assert reason.startswith("line 4: event_type")
    # Imported records feed the old read endpoints.
    stats = client.get("/statistics").json
    assert {s["benefit"]: s["events_count"] for s in stats} == {"RSA": 1, "aide_logement": 1}
    assert len(client.get("/benefits?start_at=2023-01-01").json) == 2


def test_recorder_json_lines(runner):
    line = run(runner, "recorder", "recorder.jsonl")
    assert line == "imported 3 rows, skipped 0 duplicates, rejected 2 rows"
    assert [e.name for e in events("benefits")] == ["show", "form", "email"]
    assert [r.split(":")[0] for r in reasons("import:recorder")] == ["line 3", "line 5"]


def test_trackers_csv(runner):
    line = run(runner, "trackers", "trackers.csv")
    assert line == "imported 4 rows, skipped 0 duplicates, rejected 2 rows"
    load, scroll1, scroll2, click = events("track")
    assert load.occurred_at == dt.datetime(2022, 5, 3, 8, 0)
    assert load.received_at == dt.datetime(2022, 5, 3, 8, 0, 0, 412000)
    assert (load.browser, load.referrer) == ("Firefox", "https://search.example/q")
    assert load.props["meta"] == {"title": "Demo"}
    assert [scroll1.name, scroll2.name, click.name] == ["scroll", "scroll", "click"]
    assert click.path == "/about.html" and click.session_id == load.session_id
    assert [r.split(":")[0] for r in reasons("import:trackers")] == ["line 6", "line 7"]


def test_collector_csv_keeps_the_session_timestamp_rule(runner):
    line = run(runner, "collector", "collector.csv")
    assert line == "imported 3 rows, skipped 1 duplicates, rejected 1 rows"
    pageview, banner, submit = events("collector")
    assert pageview.occurred_at == dt.datetime(2021, 1, 1, 9, 15, 27, 243860)
    assert (banner.category, banner.name) == ("page interaction", "banner image click")
    assert submit.props["form"] == {"first_name": "John", "last_name": "Doe"}
    [reason] = reasons("import:collector")
    assert reason.startswith("line 10: timestamp")


def test_events_jsonl_needs_a_site_and_keeps_old_times(runner, make_site):
    assert (
        "needs --site"
        in runner.invoke(args=["import", "--from", "events", str(DATA / "events.jsonl")]).output
    )
    site = make_site(public_id="imported")
    line = run(runner, "events", "events.jsonl", "--site", "imported")
    assert line == "imported 3 rows, skipped 0 duplicates, rejected 3 rows"
    pageview, signup, impression = events("import")
    assert pageview.site_id == site.id
    assert pageview.occurred_at == dt.datetime(2019, 3, 4, 5, 6, 7)
    assert (pageview.path, pageview.referrer) == ("/post/1", "https://search.example/q")
    assert pageview.dedupe_key == "s1-1"
    assert signup.props == {"plan": "pro"}
    assert (impression.item_id, impression.item_position, impression.list_size) == ("rsa", 2, 10)
    found = reasons("import:events")
    assert [r.split(":")[0] for r in found] == ["line 4", "line 5", "line 6"]
    assert "ts" in found[0] and "elsewhere" in found[1]


def test_unknown_site_is_a_clear_error(runner):
    result = runner.invoke(
        args=["import", "--from", "events", str(DATA / "events.jsonl"), "--site", "nope"]
    )
    assert result.exit_code != 0 and "no site with public id 'nope'" in result.output


@pytest.mark.parametrize(
    ("fmt", "name", "stored"),
    [
        ("recorder", "recorder.json", 3),
        ("recorder", "recorder.jsonl", 3),
        ("trackers", "trackers.csv", 4),
        ("collector", "collector.csv", 3),
    ],
)
def test_importing_twice_stores_once(runner, fmt, name, stored):
    run(runner, fmt, name)
    line = run(runner, fmt, name)
    assert line.startswith(f"imported 0 rows, skipped {stored + (fmt == 'collector')} duplicates")
    assert count(Event) == stored


def test_collector_import_and_live_posts_share_the_duplicate_rule(runner, client):
    from analytics.models import Category

    db.session.add(Category(name="page interaction"))
    db.session.commit()
    run(runner, "collector", "collector.csv")
    body = {
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "page interaction",
        "name": "pageview",
        "data": {},
        "timestamp": "2021-01-01 09:15:27.243860",
    }
    client.post("/collector", data=json.dumps(body), content_type="application/json")
    assert len(events("collector")) == 3
    assert reasons("/collector")[0].startswith("duplicate")


def test_batches_and_progress(app, tmp_path):
    """Many small batches give the same result as one, and progress covers the whole file."""
    path = tmp_path / "many.jsonl"
    lines = [
        json.dumps(
            {
                "_id": {"$oid": f"6500000000000000{i:08x}"},
                "hash_id": "h",
                "benefit_id": f"b{i % 7}",
                "benefit_index": i % 5 + 1,
                "page_total": 5,
                "version": 2,
            }
        )
        for i in range(1234)
    ]
    lines[100] = "{broken"
    path.write_text("\n".join(lines) + "\n")
    seen: list[int] = []
    site_id, _ = site_for_import(app, "recorder", None)
    result = import_file(str(path), "recorder", site_id, progress=seen.append, batch_rows=100)
    assert (result.imported, result.duplicates, result.rejected) == (1233, 0, 1)
    assert sum(seen) == path.stat().st_size
    assert count(Event) == 1233 and count(EventError) == 1
    again = import_file(str(path), "recorder", site_id, batch_rows=5000)
    assert (again.imported, again.duplicates) == (0, 1233)


def test_malformed_lines_are_rejected_not_fatal(app, tmp_path):
    path = tmp_path / "odd.jsonl"
    odd = [
        {"_id": {"$oid": "zzzzzzzz0000000000000000"}, "hash_id": "h", "benefit_id": "b"},
        {"_id": "x", "created_at": {"$date": {"$numberLong": "99999999999999999999"}}},
        {"created_at": "0001-01-01T00:00:00+01:00", "hash_id": "h"},
        [1, 2],
    ]
    path.write_text("\n".join(json.dumps(o) for o in odd) + "\n")
    site_id, _ = site_for_import(app, "recorder", None)
    result = import_file(str(path), "recorder", site_id)
    assert (result.imported, result.rejected) == (0, 4)
    assert count(EventError) == 4


def test_events_import_keeps_screen_and_cleans_nul(app, runner, site, tmp_path):
    """Imported events get the same columns as live ones, and any text the database refuses
    (NUL) is cleaned instead of failing the batch."""
    line = {
        "site": site.public_id,
        "name": "a\u0000b",
        "ts": "2020-01-02T03:04:05Z",
        "screen": 1280,
        "url": "https://x.example/p?utm_source=news",
    }
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(line) + "\n")
    result = runner.invoke(args=["import", "--from", "events", str(path), "--site", site.public_id])
    assert result.exit_code == 0, result.output
    event = db.session.execute(db.select(Event)).scalar_one()
    assert event.name == "a\ufffdb" and event.props == {"screen": 1280}
    assert (event.path, event.utm_source) == ("/p", "news")
