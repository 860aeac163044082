"""CSV written by the database: the same bytes as the Python writer, hostile values included."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import JSON, Select, Text, cast

from analytics import csv_sql
from analytics.csv_sql import csv_stream
from analytics.explorer import EVENT_COLUMNS, errors_select, events_select
from analytics.export import csv_chunks
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.ingest.writer import error_row, event_row, insert_events, record_errors
from analytics.models import Event, EventError, utcnow
from tests.accounts import logged_in

# A stored text, and the cell a spreadsheet should get for it.
HOSTILE = {
    "=1+1": "'=1+1",
    "-3": "-3",
    "+3": "+3",
    "-12.5": "-12.5",
    "-1e5": "-1e5",
    ".5": ".5",
    "-.5e+3": "-.5e+3",
    "-3\n": "-3\n",  # Python's `$` matches before a final newline: still a number
    "-": "'-",
    "+": "'+",
    "=": "'=",
    "@x": "'@x",
    "\tx": "'\tx",
    "\rx": "'\rx",
    "-cmd": "'-cmd",
    "+SUM(A1)": "'+SUM(A1)",
    "'already": "'already",
    " =lead": " =lead",
    'a "quoted", value': 'a "quoted", value',
    "line\nbreak": "line\nbreak",
    "crlf\r\ninside": "crlf\r\ninside",
    "ünïcödé ✓ 漢字 🙂": "ünïcödé ✓ 漢字 🙂",
    "": "",
    "plain": "plain",
}
PROPS = [
    {"b": 1, "aa": {"z": [1, {"y": "=x", "xx": None}], "a": 'é\n"q"'}, "ccc": -3},
    {"zeta": "-3", "a": True, "mid": 1.5, "e": [], "o": {}},
    {"formula": "=HYPERLINK()", "tab": "\t", "unicode": "漢字"},
    {},
    None,
]


def _seed_hostile(site) -> None:
    base = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    rows = []
    for i, text in enumerate(HOSTILE):
        rows.append(
            event_row(
                site_id=site.id,
                source="api",
                name=text,
                category=text or None,
                path=text,
                referrer=None if i % 2 else text,
                item_id=text,
                item_position=-i,
                list_size=i if i % 3 else None,
                # Whole seconds and not: isoformat() writes microseconds only when there are some.
                occurred_at=base + dt.timedelta(seconds=i, microseconds=(i % 2) * 1234),
                props=PROPS[i % len(PROPS)],
            )
        )
    errors = [
        error_row("/api/events", text or "empty", payload=PROPS[i % len(PROPS)], site_id=site.id)
        for i, text in enumerate(HOSTILE)
    ] + [error_row("/collector", "not JSON", raw=text) for text in HOSTILE]
    with db.engine.begin() as conn:
        insert_events(conn, rows)
        record_errors(errors, conn)


def _python_csv(stmt: Select) -> bytes:
    """What the exports wrote before `csv_sql`: rows through `export.csv_chunks`, JSON as text."""
    columns = [
        cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c
        for c in stmt.selected_columns
    ]
    rows = db.session.execute(stmt.with_only_columns(*columns))
    header = [c.name for c in stmt.selected_columns]
    return "".join(csv_chunks(header, rows)).encode("utf-8")


def _events(site) -> Select:
    filters = parse_filters({"site": site.public_id, "period": "all"}, [site])
    return events_select(filters).order_by(None).order_by(Event.occurred_at, Event.id)


def _errors(site) -> Select:
    filters = parse_filters({"site": site.public_id, "period": "all"}, [site])
    stmt = errors_select(filters).order_by(None)
    return stmt.order_by(EventError.received_at, EventError.id)


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.mark.parametrize("select", [_events, _errors])
def test_database_csv_is_byte_for_byte_the_python_csv(site, select):
    _seed_hostile(site)
    stmt = select(site)
    ours = b"".join(csv_stream(db.engine, stmt))
    assert len(_rows(ours)) == 1 + len(db.session.execute(stmt).all())
    assert ours == _python_csv(stmt)


def test_events_csv_defuses_formulas_and_keeps_numbers_over_http(client, site):
    _seed_hostile(site)
    logged_in(client)
    response = client.get(f"/export/events.csv?site={site.public_id}&period=all")
    body = response.get_data()
    table = _rows(body)
    header = table[0]
    names = [row[header.index("name")] for row in table[1:]]
    assert names == list(HOSTILE.values())
    # Records end in CRLF; a newline inside a quoted cell is left as it was written.
    assert body.endswith(b"\r\n") and b'"line\nbreak"' in body and b'"crlf\r\ninside"' in body
    assert body.replace(b'"crlf\r\ninside"', b"").count(b"\r\n") == 1 + len(HOSTILE)
    first = table[1]
    assert first[header.index("category")] == "'=1+1"
    assert first[header.index("item_position")] == "0"
    assert table[2][header.index("item_position")] == "-1"
    times = [row[0] for row in table[1:]]
    assert len(times[0]) == 19 and len(times[1]) == 26  # 'YYYY-MM-DDTHH:MM:SS[.ffffff]'
    assert dt.datetime.fromisoformat(times[1]).microsecond == 1234
    assert table[5][header.index("props")] == ""  # NULL props
    # Nested keys in any order come back as the same JSON (the database's own text of it).
    assert [json.loads(row[header.index("props")]) for row in table[1:5]] == PROPS[:4]


def test_postgres_guard_takes_ascii_digits_only(client, site):
    """The documented difference: Python's \\d takes any digit, the SQL guard ASCII ones only."""
    with db.engine.begin() as conn:
        insert_events(conn, [event_row(site_id=site.id, source="api", name="-٣")])
    logged_in(client)
    table = _rows(client.get(f"/export/events.csv?site={site.public_id}&period=all").get_data())
    name = table[1][table[0].index("name")]
    assert name == ("'-٣" if db.engine.dialect.name == "postgresql" else "-٣")


def test_an_empty_export_is_the_header(site):
    body = b"".join(csv_stream(db.engine, _events(site)))
    assert body == (",".join(EVENT_COLUMNS) + "\r\n").encode()


def test_a_dropped_download_returns_its_connection(site, monkeypatch):
    monkeypatch.setattr(csv_sql, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(csv_sql, "SQLITE_BATCH", 10)
    rows = [
        event_row(site_id=site.id, source="api", name=f"n{i}", occurred_at=utcnow())
        for i in range(500)
    ]
    with db.engine.begin() as conn:
        insert_events(conn, rows)
    stmt = _events(site)
    db.session.remove()
    before = db.engine.pool.checkedout()
    stream = csv_stream(db.engine, stmt)
    next(stream)
    assert db.engine.pool.checkedout() == before + 1
    stream.close()  # what the server does when the client goes away
    assert db.engine.pool.checkedout() == before
    if db.engine.dialect.name == "postgresql":
        # This database's exports only (`COPY (SELECT ...) TO STDOUT`): the server also holds
        # the other test workers' databases, and a refresher copies rows in with `COPY rollup_...
        # FROM STDIN` (CI failed on one such, 2026-12-04). The cancel reaches the server a
        # moment after the close: a few seconds are allowed.
        copying = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'COPY (%' AND state = 'active' AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 5
        with db.engine.connect() as conn:
            while conn.execute(copying).scalar_one() and time.monotonic() < deadline:
                conn.rollback()  # a fresh snapshot of pg_stat_activity
                time.sleep(0.05)
            assert conn.execute(copying).scalar_one() == 0
    # The returned connection serves the next export in full.
    assert b"".join(csv_stream(db.engine, stmt)).count(b"\r\n") == 501
