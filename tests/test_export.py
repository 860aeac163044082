"""CSV helpers (without HTTP) and the raw exports (over HTTP, against the database)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pandas as pd
import pytest
from flask import Flask
from sqlalchemy import func, select

from analytics.explorer import events_select
from analytics.export import cell, csv_response, safe_filename, stream_csv
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.ingest.writer import error_row, event_row, insert_events, record_errors
from analytics.models import utcnow
from tests.accounts import logged_in


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("events-site-2024-01-01.csv", "events-site-2024-01-01.csv"),
        ('a"b;c\r\nd.csv', "a-b-c-d.csv"),
        ("../../etc/passwd", "etc-passwd"),
        ("Ünïcödé name.csv", "n-c-d-name.csv"),
        ("", "export.csv"),
        ("...", "export.csv"),
    ],
)
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


@pytest.mark.parametrize(
    ("value", "out"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-cmd", "'-cmd"),
        ("@import", "'@import"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e5", "-1e5"),
        (-7, -7),
        (-2.5, -2.5),
        ("plain", "plain"),
        (None, ""),
        (float("nan"), ""),
        ({"b": 1, "a": "=x"}, '{"a": "=x", "b": 1}'),
    ],
)
def test_cell_guards_formulas_but_keeps_numbers(value, out):
    assert cell(value) == out


def test_csv_response_is_rfc4180_utf8_attachment():
    df = pd.DataFrame({"page": ["/a", '/b,"quoted"', "=HYPERLINK()", "/é"], "views": [3, 2, -1, 0]})
    response = csv_response(df, "top pages.csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="top-pages.csv"'
    assert response.mimetype == "text/csv"
    assert response.content_type == "text/csv; charset=utf-8"
    body = response.get_data()
    assert body.count(b"\r\n") == 5 and body.endswith(b"\r\n")
    assert parse_csv(body) == [
        ["page", "views"],
        ["/a", "3"],
        ['/b,"quoted"', "2"],
        ["'=HYPERLINK()", "-1"],
        ["/é", "0"],
    ]


def test_stream_csv_is_a_generator_read_lazily():
    app = Flask(__name__)
    consumed = []

    def rows():
        for i in range(2500):
            consumed.append(i)
            yield (i, f"name{i}")

    with app.test_request_context():
        response = stream_csv(["n", "name"], rows(), "big.csv")
        assert response.is_streamed
        assert consumed == []  # nothing read before the body is sent
        chunks = iter(response.response)
        first = next(chunks)
        assert 0 < len(consumed) < 2500
        body = first + b"".join(chunks)
    table = parse_csv(body)
    assert table[0] == ["n", "name"]
    assert len(table) == 2501
    assert table[-1] == ["2499", "name2499"]


# --- the raw exports, over HTTP -------------------------------------------------------------


def _seed(site, other):

    now = utcnow()
    rows = []
    for i in range(1234):
        rows.append(
            event_row(
                site_id=site.id,
                source="tracker" if i % 3 else "api",
                name="pageview" if i % 2 else "=cmd|' /C calc'!A0",
                path=f"/p{i % 7}",
                occurred_at=now - dt.timedelta(minutes=37 * i),
                props={"i": i, "neg": -i},
            )
        )
    rows.append(event_row(site_id=other.id, source="api", name="pageview", occurred_at=now))
    errors = [
        error_row("/api/events", "bad", payload={"x": i}, site_id=site.id) for i in range(5)
    ] + [error_row("/collector", "not JSON", raw="@SUM(1)")]
    with db.engine.begin() as conn:
        insert_events(conn, rows)
        record_errors(errors, conn)


def _db_count(site, other, args):

    filters = parse_filters(args, [site, other])
    stmt = events_select(filters).order_by(None)
    return db.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"period": "7d"},
        {"period": "all"},
        {"period": "all", "source": "api"},
        {"period": "all", "name": "pageview", "path": "/p3"},
        {"start": "2000-01-01"},
    ],
)
def test_events_csv_total_equals_the_database_count(client, make_site, args):
    site, other = make_site("Main"), make_site("Other")
    _seed(site, other)
    logged_in(client, "viewer")
    response = client.get("/export/events.csv", query_string={"site": site.public_id, **args})
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"].startswith('attachment; filename="events-')
    table = parse_csv(response.get_data())
    expected = _db_count(site, other, {"site": site.public_id, **args})
    assert expected > 0
    assert len(table) - 1 == expected
    header = table[0]
    assert header[:3] == ["occurred_at", "id", "received_at"]
    times = [row[0] for row in table[1:]]
    assert times == sorted(times)  # oldest first
    names = {row[header.index("name")] for row in table[1:]}
    assert names <= {"pageview", "'=cmd|' /C calc'!A0"}  # the formula is defused
    props = [row[header.index("props")] for row in table[1:]]
    assert all(p.startswith('{"i": ') for p in props)


def test_events_csv_of_a_large_export_has_no_row_cap(client, make_site):
    site, other = make_site("Main"), make_site("Other")
    _seed(site, other)
    logged_in(client)
    body = client.get(f"/export/events.csv?site={site.public_id}&period=all").get_data()
    assert body.count(b"\r\n") == 1234 + 1


def test_errors_csv_streams_the_rejections_with_the_guard(client, make_site):
    site, other = make_site("Main"), make_site("Other")
    _seed(site, other)
    logged_in(client)
    response = client.get(f"/export/errors.csv?site={site.public_id}")
    assert response.is_streamed
    table = parse_csv(response.get_data())
    assert table[0] == [
        "received_at",
        "id",
        "endpoint",
        "site_id",
        "reason",
        "body_size",
        "payload",
        "raw_body",
    ]
    assert len(table) == 1 + 6
    assert ["'@SUM(1)"] == [row[7] for row in table[1:] if row[2] == "/collector"]
    only = parse_csv(
        client.get(f"/export/errors.csv?site={site.public_id}&endpoint=/collector").get_data()
    )
    assert len(only) == 2
