"""CSV helpers (without HTTP) and the raw exports (over HTTP, against the database)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from flask import Flask

from analytics.export import cell, csv_response, safe_filename, stream_csv


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
