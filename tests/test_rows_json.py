"""JSON written by orjson where it can: the rows for the database (`rows_json_bytes`) and the
ingest answers (`json_body`) must be the very values the standard library's encoder (the
reference: `_ROWS_ENCODER`, `json.dumps`) writes, for any row or value at all."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.ingest.writer import _ROWS_ENCODER, event_row, rows_json, rows_json_bytes

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")) * 10, deadline=None, derandomize=True
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
times = st.datetimes(
    min_value=dt.datetime(1970, 1, 2),
    max_value=dt.datetime(9998, 12, 30),
    timezones=st.none() | st.just(dt.UTC) | st.timezones(),
)


def reference(rows: list[dict[str, Any]]) -> Any:
    return json.loads(_ROWS_ENCODER.encode(rows))


@SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(max_size=20),
                "path": st.none() | st.text(max_size=30),
                "props": st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4),
                "occurred_at": times,
                "received_at": times,
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_rows_written_as_the_reference_writes_them(fields: list[dict[str, Any]]) -> None:
    rows = [event_row(site_id=1, source="api", **f) for f in fields]
    expected = reference(rows)
    found = rows_json_bytes(rows)
    assert json.loads(found) == expected
    assert json.dumps(json.loads(found)) == json.dumps(expected)  # 1 and 1.0 apart
    assert json.loads(rows_json(rows)) == expected


def test_ids_and_times_as_the_columns_read_them() -> None:
    when = dt.datetime(2026, 12, 5, 3, 0, 0)
    row = event_row(site_id=1, source="api", name="x", occurred_at=when, received_at=when)
    row["id"] = uuid.UUID("01939a3c-0000-7000-8000-000000000001")
    (written,) = json.loads(rows_json_bytes([row]))
    assert written["id"] == "01939a3c-0000-7000-8000-000000000001"
    assert written["occurred_at"] == "2026-12-05T03:00:00"
    # an offset time is written as naive UTC, which a `timestamp` column keeps as it reads
    aware = event_row(
        site_id=1, source="api", name="x",
        occurred_at=dt.datetime(2026, 12, 5, 4, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    )  # fmt: skip
    (written,) = json.loads(rows_json_bytes([aware]))
    assert written["occurred_at"] == "2026-12-05T03:00:00.000005"


@SETTINGS
@given(json_values | st.dictionaries(st.integers() | st.text(), json_values, max_size=4))
def test_answers_read_as_json_dumps_writes_them(value: Any) -> None:
    """An ingest answer's body (`views/answer.py`) is the JSON value `json.dumps` writes."""
    from analytics.views.answer import json_body

    body = json_body(value)
    expected = json.loads(json.dumps(value))
    assert json.loads(body) == expected
    assert json.dumps(json.loads(body)) == json.dumps(expected)
