"""Fuzzing every ingest endpoint: property-based (Hypothesis) and schema-driven (schemathesis
against `/api/openapi.json`), on both databases.

The invariants: never a 5xx (a 503 only for a database that is down, which it is not here), and
every request ends as stored events or `event_errors` rows: a 4xx always leaves a row in
`event_errors`, and a 2xx adds no row that is neither.

CI runs a bounded number of cases (`FUZZ_EXAMPLES`, default 30 per test and database); `make
fuzz` runs a long one (FUZZ_EXAMPLES=3000).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import Event, EventError

from .conftest import count

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("FUZZ_RANDOM", "") == "",  # CI: the same cases every run
)
ENDPOINTS = ["/api/events", "/benefits", "/collector", "/track"]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)

# JSON values of every shape, with the strings that break naive code: NUL, lone surrogates are
# not valid JSON text, so they come as escapes in the raw-bytes strategy below.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
    | st.sampled_from(["demo", "pageview", "", "\x00", "2024-01-01T00:00:00Z", "9" * 40])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(
        st.sampled_from(
            ["site", "name", "ts", "age", "eid", "url", "item", "props", "session", "hash_id",
             "benefits", "event", "page", "type", "category", "action", "x"]
        )
        | st.text(max_size=10),
        inner,
        max_size=8,
    ),
    max_leaves=30,
)
# Near misses of a valid native event: right keys, any values.
native_events = st.fixed_dictionaries(
    {"site": st.just("fuzz") | scalars, "name": st.text(max_size=120) | scalars},
    optional={
        "ts": scalars,
        "age": scalars,
        "eid": st.text(max_size=80) | scalars,
        "url": st.text(max_size=300) | scalars,
        "item": json_values,
        "props": json_values,
        "screen": scalars,
    },
)


def check_invariants(response: Any, before: tuple[int, int]) -> None:
    events, errors = count(Event), count(EventError)
    status = response.status_code
    assert status < 500, (status, response.get_data(as_text=True)[:300])
    if 400 <= status < 500:
        assert errors > before[1], f"a {status} left no event_errors row"
    else:
        assert events >= before[0] and errors >= before[1]


def post(client, path: str, data: bytes) -> Any:
    before = (count(Event), count(EventError))
    response = client.post(
        path, data=data, headers={"User-Agent": CHROME}, content_type="application/json"
    )
    check_invariants(response, before)
    return response


@pytest.fixture
def fuzz_site(make_site):
    return make_site(public_id="fuzz")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_any_bytes(client, fuzz_site, path: str) -> None:
    @FUZZ
    @given(
        st.binary(max_size=2000)
        | st.text(max_size=500).map(str.encode)
        | st.sampled_from([b'{"site": "fuzz", "name": "\\u0000"}', b'["\\ud800"]', b"[" * 5000])
    )
    def run(body: bytes) -> None:
        post(client, path, body)

    run()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_any_json(client, fuzz_site, path: str) -> None:
    @FUZZ
    @given(json_values)
    def run(value: Any) -> None:
        post(client, path, json.dumps(value).encode())

    run()


def test_near_valid_native_events(client, fuzz_site) -> None:
    @FUZZ
    @given(st.lists(native_events, min_size=1, max_size=5) | native_events)
    def run(value: Any) -> None:
        post(client, "/api/events", json.dumps(value).encode())

    run()


# --- schema-driven: whatever the published description allows, and what it does not -----------


def ingest_operations(app) -> list[Any]:
    """The POST operations the app's OpenAPI document describes (every ingest endpoint)."""
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    found = [result.ok() for result in loaded.get_all_operations()]
    return [op for op in found if op.method.upper() == "POST"]


def test_the_openapi_document_describes_every_ingest_endpoint(app) -> None:
    assert sorted(op.path for op in ingest_operations(app)) == sorted(ENDPOINTS)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_ingest_operation_of_the_openapi_document(
    app, client, fuzz_site, path: str, mode: str
) -> None:
    """Cases that schemathesis draws from the document: valid ones (positive) and ones that
    break it on purpose (negative)."""
    [operation] = [op for op in ingest_operations(app) if op.path == path]

    @FUZZ
    @given(operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    def run(case) -> None:
        before = (count(Event), count(EventError))
        body = case.body
        if body is None or type(body).__name__ == "NotSet":
            data = b""
        else:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.post(
            path,
            data=data,
            headers={**(case.headers or {}), "User-Agent": CHROME},
            query_string=case.query or None,
            content_type=case.media_type or "application/json",
        )
        check_invariants(response, before)

    run()
